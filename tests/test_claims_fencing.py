"""Claims cannot be stolen from a live holder (docs/decisions/0013): a janitor re-queues only
the round it judged expired, a run writes only while it holds its round, and adopting a
claim after a restart treats a lost claim as lost work. Real simulator, real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from forge.calls import check_fence, fenced
from forge.claims import Claim, ClaimLost, ClaimMarker, Claims
from forge.gateway import Gateway, note_marker
from forge.sink import seal
from forge.types import Issue
from sim.core.app import RunningSim
from storage import Lease, LeaseStore, Storage
from tests.support.faults import as_written
from tests.support.forge import PROJECT, admin, gateway_for, make_project

TTL = 30
LONG_AGO = "2026-01-01T00:00:00Z"


def past(seconds: float) -> datetime:
    """A clock ``seconds`` behind: claims it posts are already expired for everyone else."""
    return datetime.now(UTC) - timedelta(seconds=seconds)


def dead_host(gateway: Gateway, leases: LeaseStore) -> Claims[Lease]:
    return Claims(gateway, leases, worker="dead", ttl_seconds=TTL, clock=lambda: past(2 * TTL))


Host = tuple[Gateway, Storage]


@asynccontextmanager
async def dead_claim(
    sim: RunningSim, tmp_path: Path, title: str
) -> AsyncIterator[tuple[Issue, Host, Host]]:
    """An issue a host that then died claimed, with a clock behind, so its claim is expired
    for everyone; and two live hosts, "one" and "two", whose janitors judge it."""
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "dead.sqlite3") as (gw_dead, st_dead),
        gateway_for(sim, tmp_path / "one.sqlite3") as one,
        gateway_for(sim, tmp_path / "two.sqlite3") as two,
    ):
        issue = await gw_dead.create_issue(PROJECT, title, "", ["workflow::pm-ready"])
        assert await dead_host(gw_dead, st_dead.leases).claim(issue, "pm", "r-dead") is not None
        yield issue, one, two


async def labels_of(gateway: Gateway, iid: int) -> set[str]:
    return {label for label in (await gateway.get_issue(PROJECT, iid)).labels if "::" in label}


async def bodies(gateway: Gateway, iid: int) -> list[str]:
    return [as_written(note.body) for note in await gateway.notes(PROJECT, iid)]


async def test_a_stale_janitor_does_not_requeue_the_next_claimers_round(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, defect 2: two janitors expired the same claim; the first re-queued and its
    host claimed the issue; the second, having judged the old claim expired, must not
    re-queue the new round (it did: a second host claimed it and both ran the stage)."""
    async with dead_claim(sim, tmp_path, "Expired twice") as (
        issue,
        (gw_one, st_one),
        (gw_two, st_two),
    ):
        first = Claims(gw_one, st_one.leases, worker="one", ttl_seconds=TTL)
        second = Claims(gw_two, st_two.leases, worker="two", ttl_seconds=TTL)
        listed = await second.running(PROJECT, "pm")  # both janitors' listing
        taken: list[Claim[Lease]] = []
        judge_then_write = gw_two.edit_note

        async def first_janitor_and_its_host_go_first(*args: Any, **kwargs: Any) -> Any:
            # The second janitor has judged the dead claim expired; before its first write
            # the first janitor re-queues and the first janitor's host wins the next round.
            if not taken:
                assert await first.expire(listed[0], "pm", reason="re-queued by janitor one")
                won = await first.claim(listed[0], "pm", "r-one")
                assert won is not None
                taken.append(won)
            return await judge_then_write(*args, **kwargs)

        monkeypatch.setattr(gw_two, "edit_note", first_janitor_and_its_host_go_first)
        assert await second.expire(listed[0], "pm", reason="re-queued by janitor two") is False
        assert taken, "the interleaving did not happen"

        assert await labels_of(gw_one, issue.iid) == {"workflow::pm-running"}
        view = await first.current(PROJECT, issue.iid, "workflow::pm-ready")
        assert view is not None and view.note.id == taken[0].note_id
        await first.check(taken[0])  # the new holder still holds its round
        notes = "\n".join(await bodies(gw_one, issue.iid))
        assert "re-queued by janitor one" in notes and "re-queued by janitor two" not in notes


async def test_two_janitors_requeueing_one_round_at_once_leave_one_note(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both janitors judged the same dead round and passed their fences; the first one's
    whole re-queue lands while the second's PUT is in flight, which then changes nothing.
    The round was re-queued once, so one note says so (a full-size chaos run found two)."""
    async with dead_claim(sim, tmp_path, "Expired at once") as (
        issue,
        (gw_one, st_one),
        (gw_two, st_two),
    ):
        # The first janitor comes along a whole TTL later: the round has had no live claim
        # since the second one marked the dead claim expired.
        later = datetime.now(UTC) + timedelta(seconds=2 * TTL)
        first = Claims(gw_one, st_one.leases, worker="one", ttl_seconds=TTL, clock=lambda: later)
        second = Claims(gw_two, st_two.leases, worker="two", ttl_seconds=TTL)
        listed = await second.running(PROJECT, "pm")
        overtaken: list[bool] = []
        send = gw_two.calls.client.call

        async def first_janitor_lands_while_the_put_is_in_flight(
            operation: str, *args: Any, **kwargs: Any
        ) -> Any:
            if operation == "issue.update" and not overtaken:  # its fence has passed
                with fenced(None):  # another host: none of the second janitor's fence
                    overtaken.append(
                        await first.expire(listed[0], "pm", reason="expired, re-queued")
                    )
            return await send(operation, *args, **kwargs)

        monkeypatch.setattr(
            gw_two.calls.client, "call", first_janitor_lands_while_the_put_is_in_flight
        )
        await second.expire(listed[0], "pm", reason="expired, re-queued")
        assert overtaken == [True], "the interleaving did not happen"

        assert await labels_of(gw_one, issue.iid) == {"workflow::pm-ready"}
        notes = await bodies(gw_one, issue.iid)
        assert sum("expired, re-queued" in body for body in notes) == 1, notes


async def test_a_claimer_between_its_label_move_and_its_note_is_not_requeued(
    sim: RunningSim, tmp_path: Path
) -> None:
    """A janitor working from an earlier listing must judge "no claim for a whole TTL" on
    when the issue became running, not on the listing's ``updated_at``."""
    async with dead_claim(sim, tmp_path, "Half claimed") as (
        issue,
        (gw_one, st_one),
        (gw_two, st_two),
    ):
        first = Claims(gw_one, st_one.leases, worker="one", ttl_seconds=TTL)
        second = Claims(gw_two, st_two.leases, worker="two", ttl_seconds=TTL)
        # The second janitor's listing was taken a while ago (a slow pass, a long page).
        listed = replace((await second.running(PROJECT, "pm"))[0], updated_at=LONG_AGO)
        assert await first.expire(listed, "pm", reason="re-queued by janitor one")
        # A claimer's first step (the label move); its claim note is not posted yet.
        await gw_one.transition(PROJECT, issue.iid, "pm-running", expect={"pm-ready"})

        assert await second.expire(listed, "pm", reason="re-queued by janitor two") is False
        assert await labels_of(gw_two, issue.iid) == {"workflow::pm-running"}


async def test_a_run_whose_round_was_requeued_cannot_write(sim: RunningSim, tmp_path: Path) -> None:
    """The holder of an earlier round (its issue re-queued by a janitor's request that
    slipped in, or by a human) neither moves, notes nor pushes once the round is over: the
    next claimer keeps its running state."""
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "old.sqlite3") as (gw_old, st_old),
        gateway_for(sim, tmp_path / "new.sqlite3") as (gw_new, st_new),
    ):
        issue = await gw_old.create_issue(PROJECT, "Re-queued", "", ["workflow::pm-ready"])
        old = Claims(gw_old, st_old.leases, worker="old", ttl_seconds=TTL)
        new = Claims(gw_new, st_new.leases, worker="new", ttl_seconds=TTL)
        held = await old.claim(issue, "pm", "r-old")
        assert held is not None
        admin(sim).projects.get(PROJECT).issues.update(
            issue.iid, {"add_labels": "workflow::pm-ready", "remove_labels": "workflow::pm-running"}
        )
        taken = await new.claim(issue, "pm", "r-new")
        assert taken is not None

        with fenced(lambda: old.check(held)):
            with pytest.raises(ClaimLost, match="re-queued"):
                await gw_old.transition(PROJECT, issue.iid, "plan-review", expect={"pm-running"})
            with pytest.raises(ClaimLost):
                await gw_old.post_note(PROJECT, issue.iid, "handoff from the old round")
            with pytest.raises(ClaimLost):
                await check_fence()  # what a push awaits first
        with fenced(lambda: new.check(taken)):
            await check_fence()  # the live holder passes

        assert await labels_of(gw_new, issue.iid) == {"workflow::pm-running"}
        assert "handoff from the old round" not in await bodies(gw_new, issue.iid)


async def test_a_run_near_its_own_expiry_stops_writing(sim: RunningSim, tmp_path: Path) -> None:
    """Once the expiry is near by the holder's clock (a janitor may act once it passed) the
    holder writes nothing more, even before any re-queue shows."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Late", "", ["workflow::pm-ready"])
        now = [datetime.now(UTC)]
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=TTL, clock=lambda: now[0])
        held = await claims.claim(issue, "pm", "r")
        assert held is not None
        now[0] += timedelta(seconds=TTL / 2)
        await claims.check(held)
        # Less than a sixth of the TTL left: a write sent now might land after the expiry.
        now[0] += timedelta(seconds=TTL / 3 + 1)
        with pytest.raises(ClaimLost, match="too soon"):
            await claims.check(held)


async def test_adopt_after_a_janitor_moved_the_claim_between_its_reads_is_lost_work(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, defect 3: between adopt's read of the live claim and its renewal, another
    host's janitor expired the claim and its host claimed the issue. Adopt answers None
    (it raised ClaimLost, which stopped `crewline worker` at start)."""
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "mine.sqlite3") as (gw_mine, st_mine),
        gateway_for(sim, tmp_path / "other.sqlite3") as (gw_other, st_other),
    ):
        issue = await gw_mine.create_issue(PROJECT, "Adopted late", "", ["workflow::pm-ready"])
        mine = Claims(gw_mine, st_mine.leases, worker="mine", ttl_seconds=TTL)
        held = await mine.claim(issue, "pm", "r-mine")
        assert held is not None
        later = Claims(
            gw_other,
            st_other.leases,
            worker="other",
            ttl_seconds=TTL,
            clock=lambda: datetime.now(UTC) + timedelta(seconds=2 * TTL),
        )
        other = Claims(gw_other, st_other.leases, worker="other", ttl_seconds=TTL)
        take_lease = st_mine.leases.acquire
        moved: list[bool] = []

        async def janitor_between_the_reads(
            key: str, holder: str, ttl: float, *, retake: bool = False
        ) -> Lease | None:
            if not moved:
                moved.append(await later.expire(issue, "pm", reason="expired elsewhere"))
                moved.append(await other.claim(issue, "pm", "r-other") is not None)
            return await take_lease(key, holder, ttl, retake=retake)

        monkeypatch.setattr(st_mine.leases, "acquire", janitor_between_the_reads)
        restarted = await gw_mine.get_issue(PROJECT, issue.iid)
        assert await mine.adopt(restarted, "pm", "r-mine") is None
        assert moved == [True, True]
        assert await st_mine.leases.get(f"issue:{PROJECT}:{issue.iid}") is None  # let go
        markers = [ClaimMarker.parse(b) for b in await bodies(gw_other, issue.iid)]
        assert [(m.worker, m.ended) for m in markers if m] == [
            ("mine", "expired"),
            ("other", None),
        ]


async def test_adopt_whose_lease_ran_out_during_its_reads_is_lost_work(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, defect 3: the local lease expired during adopt's GitLab reads, before
    ``leases.renew``. Adopt answers None instead of raising."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        lease_now = [1_000_000.0]
        leases = LeaseStore(storage.db, clock=lambda: lease_now[0])
        claims = Claims(gateway, leases, worker="w", ttl_seconds=TTL)
        issue = await gateway.create_issue(PROJECT, "Slow reads", "", ["workflow::pm-ready"])
        assert await claims.claim(issue, "pm", "r") is not None
        read_events = gateway.label_events
        reads: list[int] = []

        async def slow_events(project: str, iid: int) -> Any:
            reads.append(iid)
            if len(reads) == 2:  # the renewal's read: the lease runs out meanwhile
                lease_now[0] += 2 * TTL
            return await read_events(project, iid)

        monkeypatch.setattr(gateway, "label_events", slow_events)
        restarted = await gateway.get_issue(PROJECT, issue.iid)
        assert await claims.adopt(restarted, "pm", "r") is None
        assert len(reads) == 2


async def test_adopt_takes_back_its_own_lease_with_a_whole_ttl(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chaos seeds under load: the killed process's lease had seconds left when its worker
    restarted, adopt's GitLab reads outlasted them, and the renewal found the lease expired,
    so a live claim of ours was dropped (a TTL and an attempt lost). The restarted worker
    takes its lease back with a whole TTL and a new token, which fences off the dead grant."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        lease_now = [1_000_000.0]
        leases = LeaseStore(storage.db, clock=lambda: lease_now[0])
        claims = Claims(gateway, leases, worker="w", ttl_seconds=TTL)
        issue = await gateway.create_issue(PROJECT, "Restarted late", "", ["workflow::pm-ready"])
        held = await claims.claim(issue, "pm", "r")
        assert held is not None
        lease_now[0] += TTL - 5  # the process died; its lease has 5 s left at the restart
        read_events = gateway.label_events
        reads: list[int] = []

        async def slow_events(project: str, iid: int) -> Any:
            reads.append(iid)
            if len(reads) == 2:  # the renewal's read takes 10 s under load
                lease_now[0] += 10
            return await read_events(project, iid)

        monkeypatch.setattr(gateway, "label_events", slow_events)
        restarted = await gateway.get_issue(PROJECT, issue.iid)
        adopted = await claims.adopt(restarted, "pm", "r")
        assert adopted is not None
        assert (adopted.note_id, adopted.round) == (held.note_id, held.round)
        assert adopted.lease.token > held.lease.token
        assert await leases.renew(held.lease, TTL) is None  # the dead grant is fenced off
        other = Claims(gateway, leases, worker="other", ttl_seconds=TTL)
        assert await other.leases.acquire(adopted.lease.key, "other", TTL, retake=True) is None


async def test_the_next_claimer_removes_a_keyed_note_copy_a_killed_janitor_left(
    sim: RunningSim, tmp_path: Path
) -> None:
    """Chaos seed 102: two janitors re-queued one expired round at once and both posted its
    keyed note; the later poster was killed before its check of copies, so the round's
    note stayed twice (docs/decisions/0015's known limit). The next round's claimer, which
    reads the notes anyway, removes the later copy; other keys and claims stay."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Re-queued twice", "", ["workflow::dev-ready"])
        requeued = f"Re-queued.\n\n{seal(note_marker('expired:dev:7'))}"
        first = await gateway.post_note(PROJECT, issue.iid, requeued)
        copy = await gateway.post_note(PROJECT, issue.iid, requeued)
        other = await gateway.post_note(
            PROJECT, issue.iid, f"x\n\n{seal(note_marker('dev-1:outcome'))}"
        )
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=TTL)
        held = await claims.claim(issue, "dev", "r")
        assert held is not None
        left = [n.id for n in await gateway.notes(PROJECT, issue.iid) if not n.system]
        assert copy.id not in left
        assert {first.id, other.id, held.note_id} <= set(left)
