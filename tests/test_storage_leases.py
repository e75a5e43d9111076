"""Leases: acquire / renew / release / takeover rules, and an 8-process race on one file."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database, Lease, LeaseStore
from tests.support.storage import ManualClock, race_worker, raw_connection, read_grants


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "leases.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def leases(db: Database, clock: ManualClock) -> LeaseStore:
    return LeaseStore(db, clock)


async def test_acquire_grants_a_free_key_with_token_one(
    leases: LeaseStore, clock: ManualClock
) -> None:
    lease = await leases.acquire("issue:g/p:1", "w1", 30)
    assert lease == Lease("issue:g/p:1", "w1", 1, clock.now + 30)
    assert await leases.get("issue:g/p:1") == lease


async def test_a_live_lease_refuses_everyone_else_and_its_own_holder(leases: LeaseStore) -> None:
    await leases.acquire("k", "w1", 30)
    assert await leases.acquire("k", "w2", 30) is None
    assert await leases.acquire("k", "w1", 30) is None  # no re-entrance: the token would change


async def test_retake_gives_a_holder_back_its_own_live_lease_and_fences_the_old_grant(
    leases: LeaseStore, clock: ManualClock
) -> None:
    """A worker killed while holding a lease restarts under the same id: it takes the lease
    back at once (not after the TTL), with a new token, and the killed grant is dead."""
    killed = await leases.acquire("gate:g/p:1", "worker-a", 60)
    assert killed is not None
    clock.advance(1)
    assert await leases.acquire("gate:g/p:1", "worker-b", 60, retake=True) is None
    back = await leases.acquire("gate:g/p:1", "worker-a", 60, retake=True)
    assert back == Lease("gate:g/p:1", "worker-a", killed.token + 1, clock.now + 60)
    assert await leases.renew(killed, 60) is None
    assert await leases.release(killed) is False
    assert await leases.get("gate:g/p:1") == back
    assert await leases.acquire("gate:g/p:1", "worker-b", 60, retake=True) is None
    assert await leases.release(back) is True
    again = await leases.acquire("gate:g/p:1", "worker-b", 60, retake=True)
    assert again is not None and again.token == back.token + 1


async def test_an_expired_lease_is_taken_over_with_the_next_token(
    leases: LeaseStore, clock: ManualClock
) -> None:
    first = await leases.acquire("k", "w1", 10)
    assert first is not None
    clock.advance(9.999)
    assert await leases.acquire("k", "w2", 10) is None
    clock.advance(0.001)  # exactly at expires_at the lease is dead
    second = await leases.acquire("k", "w2", 10)
    assert second == Lease("k", "w2", 2, clock.now + 10)


async def test_tokens_keep_increasing_across_releases(leases: LeaseStore) -> None:
    tokens = []
    for holder in ["w1", "w2", "w1"]:
        lease = await leases.acquire("k", holder, 5)
        assert lease is not None
        tokens.append(lease.token)
        assert await leases.release(lease) is True
    assert tokens == [1, 2, 3]
    assert await leases.get("k") is None


async def test_tokens_are_counted_per_key(leases: LeaseStore) -> None:
    a = await leases.acquire("a", "w1", 5)
    b = await leases.acquire("b", "w1", 5)
    assert a is not None and b is not None
    assert (a.token, b.token) == (1, 1)


async def test_renew_extends_a_live_lease_from_now(leases: LeaseStore, clock: ManualClock) -> None:
    lease = await leases.acquire("k", "w1", 10)
    assert lease is not None
    clock.advance(8)
    renewed = await leases.renew(lease, 10)
    assert renewed == Lease("k", "w1", 1, clock.now + 10)
    clock.advance(9)
    assert await leases.acquire("k", "w2", 10) is None


async def test_renew_refuses_an_expired_lease_even_if_nobody_took_it(
    leases: LeaseStore, clock: ManualClock
) -> None:
    lease = await leases.acquire("k", "w1", 10)
    assert lease is not None
    clock.advance(10)
    assert await leases.renew(lease, 10) is None
    assert [expired.key for expired in await leases.expired()] == ["k"]
    again = await leases.acquire("k", "w1", 10)
    assert again is not None and again.token == 2


async def test_renew_and_release_refuse_a_stale_token_after_takeover(
    leases: LeaseStore, clock: ManualClock
) -> None:
    old = await leases.acquire("k", "w1", 10)
    assert old is not None
    clock.advance(11)
    new = await leases.acquire("k", "w2", 10)
    assert new is not None
    assert await leases.renew(old, 10) is None
    assert await leases.release(old) is False
    assert await leases.get("k") == new


async def test_release_needs_the_holder_and_the_token(leases: LeaseStore) -> None:
    lease = await leases.acquire("k", "w1", 10)
    assert lease is not None
    assert await leases.release(Lease("k", "w2", lease.token, lease.expires_at)) is False
    assert await leases.release(Lease("k", "w1", lease.token + 1, lease.expires_at)) is False
    assert await leases.release(Lease("other", "w1", lease.token, lease.expires_at)) is False
    assert await leases.get("k") == lease
    assert await leases.release(lease) is True
    assert await leases.release(lease) is False  # already released


async def test_release_of_an_expired_but_untaken_lease_frees_it(
    leases: LeaseStore, clock: ManualClock
) -> None:
    lease = await leases.acquire("k", "w1", 10)
    assert lease is not None
    clock.advance(20)
    assert await leases.release(lease) is True
    assert await leases.expired() == []


async def test_renew_after_release_is_refused(leases: LeaseStore) -> None:
    lease = await leases.acquire("k", "w1", 10)
    assert lease is not None
    await leases.release(lease)
    assert await leases.renew(lease, 10) is None


async def test_get_reports_only_live_leases(leases: LeaseStore, clock: ManualClock) -> None:
    assert await leases.get("never") is None
    await leases.acquire("k", "w1", 10)
    clock.advance(10)
    assert await leases.get("k") is None


async def test_expired_lists_dead_unreleased_leases_by_expiry(
    leases: LeaseStore, clock: ManualClock
) -> None:
    late = await leases.acquire("late", "w1", 20)
    early = await leases.acquire("early", "w2", 5)
    live = await leases.acquire("live", "w3", 100)
    released = await leases.acquire("released", "w4", 1)
    assert late and early and live and released
    await leases.release(released)
    assert await leases.expired() == []
    clock.advance(30)
    assert await leases.expired() == [early, late]
    assert await leases.expired(now=clock.now - 20) == [early]


async def test_held_by_lists_the_live_leases_of_one_holder(
    leases: LeaseStore, clock: ManualClock
) -> None:
    b = await leases.acquire("b", "w1", 100)
    a = await leases.acquire("a", "w1", 100)
    await leases.acquire("short", "w1", 1)
    await leases.acquire("c", "w2", 100)
    clock.advance(2)
    assert await leases.held_by("w1") == [a, b]
    assert await leases.held_by("nobody") == []


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True, "10"])
async def test_a_bad_ttl_is_refused(leases: LeaseStore, ttl: object) -> None:
    with pytest.raises(ValueError, match="lease ttl"):
        await leases.acquire("k", "w1", ttl)  # type: ignore[arg-type]
    lease = await leases.acquire("k", "w1", 5)
    assert lease is not None
    with pytest.raises(ValueError, match="lease ttl"):
        await leases.renew(lease, ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "holder", "field"), [("", "w", "key"), ("k", " ", "holder")])
async def test_an_empty_key_or_holder_is_refused(
    leases: LeaseStore, key: str, holder: str, field: str
) -> None:
    with pytest.raises(ValueError, match=f"lease {field} must be a non-empty string"):
        await leases.acquire(key, holder, 5)


async def test_the_key_row_outlives_release_so_tokens_are_never_reused(
    db: Database, leases: LeaseStore
) -> None:
    lease = await leases.acquire("k", "w1", 5)
    assert lease is not None
    await leases.release(lease)
    with raw_connection(db.path) as raw:
        row = raw.execute("SELECT token, holder FROM leases WHERE key = 'k'").fetchone()
    assert (row["token"], row["holder"]) == (1, None)


async def test_two_connections_in_one_process_never_both_win(tmp_path: Path) -> None:
    path = tmp_path / "two.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        results = await asyncio.gather(
            *[
                LeaseStore(db).acquire("k", f"w{index}", 30)
                for index, db in enumerate([first, second] * 5)
            ]
        )
    finally:
        await first.close()
        await second.close()
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1 and winners[0].token == 1


def test_eight_processes_racing_never_overlap_and_lose_no_grant(tmp_path: Path) -> None:
    """8 spawned processes fight over 3 keys for 2.5 s; every grant is logged by its winner."""
    path = tmp_path / "race.sqlite3"
    keys = ["issue:g/p:1", "issue:g/p:2", "workspace:g/p"]
    workers = 8
    asyncio.run(_create(path))  # migrate once up front so the race is about leases only
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    processes = [
        context.Process(target=race_worker, args=(str(path), worker, keys, 2.5, barrier))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(60)
        for process in processes:
            process.join(60)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0] * workers

    grants = read_grants(path, workers)
    with raw_connection(path) as raw:
        issued = {row["key"]: row["token"] for row in raw.execute("SELECT key, token FROM leases")}
    assert set(grants) == set(keys) == set(issued)
    for key, key_grants in grants.items():
        # No grant lost and none given twice: the logged tokens are exactly 1..last issued.
        assert [grant.token for grant in key_grants] == list(range(1, issued[key] + 1)), key
        for before, after in itertools.pairwise(key_grants):
            # Tokens increase in grant order, and a grant starts only after the previous holder
            # released (or its lease expired): no two holders' intervals overlap.
            assert before.start < after.start, (key, before, after)
            assert before.end <= after.start, (key, before, after)
    assert sum(len(g) for g in grants.values()) > 3 * workers  # the race really happened
    assert any(g.how == "abandoned" for key_grants in grants.values() for g in key_grants)


async def _create(path: Path) -> None:
    db = await Database.open(path)
    await db.close()
