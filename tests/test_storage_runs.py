"""Runs: start / resume / finish, write-once checkpoints, usage and spend windows, session ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from storage import (
    Database,
    RunFinishedError,
    RunNotFoundError,
    RunStatus,
    RunStore,
    Spend,
)
from tests.support.storage import ManualClock

# 2024-03-01T23:30:00Z: half an hour before midnight, so spend windows can straddle a day.
LATE_EVENING = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
MIDNIGHT = datetime(2024, 3, 2, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "runs.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(LATE_EVENING.timestamp())


@pytest.fixture
def runs(db: Database, clock: ManualClock) -> RunStore:
    return RunStore(db, clock)


async def test_start_creates_a_running_run(runs: RunStore) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    assert (run.project, run.iid, run.stage, run.attempt, run.worker) == (
        "g/app",
        7,
        "dev",
        1,
        "host-a",
    )
    assert run.status is RunStatus.RUNNING and not run.finished
    assert run.started_at == run.updated_at == LATE_EVENING
    assert run.finished_at is None and run.detail is None and run.session_id is None
    assert (run.tokens_in, run.tokens_out, run.cost_usd) == (0, 0, 0.0)
    assert await runs.get(run.id) == run


async def test_starting_an_unfinished_run_again_resumes_it_under_the_new_worker(
    runs: RunStore, clock: ManualClock
) -> None:
    first = await runs.start("g/app", 7, "dev", 1, "host-a")
    clock.advance(60)
    again = await runs.start("g/app", 7, "dev", 1, "host-b")
    assert again.id == first.id
    assert again.worker == "host-b"
    assert again.started_at == first.started_at
    assert again.updated_at == first.updated_at + timedelta(seconds=60)
    assert [run.id for run in await runs.active()] == [first.id]


async def test_a_restarted_worker_gets_back_the_finished_steps_in_order(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "restart.sqlite3"
    db = await Database.open(path)
    store = RunStore(db, clock)
    run = await store.start("g/app", 7, "dev", 1, "host-a")
    await store.checkpoint(run.id, "workspace", {"branch": "crewline/7-dev", "sha": "abc"})
    await store.checkpoint(run.id, "agent", {"ok": True, "session": "s-1"})
    await store.checkpoint(run.id, "branch_pushed", "abc123")
    await db.close()  # the worker dies here

    db = await Database.open(path)
    try:
        store = RunStore(db, clock)
        resumed = await store.start("g/app", 7, "dev", 1, "host-a")
        steps = await store.steps(resumed.id)
    finally:
        await db.close()
    assert resumed.id == run.id
    # Recorded order, not alphabetical: "workspace" came first.
    assert list(steps) == ["workspace", "agent", "branch_pushed"]
    assert steps == {
        "workspace": {"branch": "crewline/7-dev", "sha": "abc"},
        "agent": {"ok": True, "session": "s-1"},
        "branch_pushed": "abc123",
    }


async def test_a_checkpoint_keeps_its_first_result(runs: RunStore) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    assert await runs.checkpoint(run.id, "mr", {"iid": 12}) == {"iid": 12}
    # A step replayed after a crash converges on the first answer.
    assert await runs.checkpoint(run.id, "mr", {"iid": 13}) == {"iid": 12}
    assert await runs.steps(run.id) == {"mr": {"iid": 12}}


async def test_a_checkpoint_touches_its_run_and_a_replayed_one_changes_nothing(
    runs: RunStore, clock: ManualClock
) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    clock.advance(30)
    await runs.checkpoint(run.id, "mr", {"iid": 12})
    touched = await runs.get(run.id)
    assert touched.updated_at == LATE_EVENING + timedelta(seconds=30)
    clock.advance(30)
    await runs.checkpoint(run.id, "mr", {"iid": 13})
    assert await runs.get(run.id) == touched


async def test_a_checkpoint_of_a_missing_or_finished_run_is_refused_and_not_kept(
    runs: RunStore, db: Database
) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 99"):
        await runs.checkpoint(99, "mr", 1)
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    await runs.finish(run.id, RunStatus.FAILED)
    with pytest.raises(RunFinishedError, match="finished as failed"):
        await runs.checkpoint(run.id, "mr", 1)
    assert await db.fetchall("SELECT * FROM checkpoints") == []


async def test_checkpoints_belong_to_their_run(runs: RunStore) -> None:
    dev = await runs.start("g/app", 7, "dev", 1, "host-a")
    review = await runs.start("g/app", 7, "review", 1, "host-a")
    await runs.checkpoint(dev.id, "push", 1)
    await runs.checkpoint(review.id, "push", 2)
    assert await runs.steps(dev.id) == {"push": 1}
    assert await runs.steps(review.id) == {"push": 2}


@pytest.mark.parametrize("result", [{1, 2}, float("nan"), object()])
async def test_a_result_that_is_not_json_is_refused(runs: RunStore, result: object) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    with pytest.raises(ValueError, match=r"'plan' of run .* not JSON-serialisable"):
        await runs.checkpoint(run.id, "plan", result)
    assert await runs.steps(run.id) == {}


async def test_finish_records_status_detail_and_time(runs: RunStore, clock: ManualClock) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    clock.advance(90)
    done = await runs.finish(run.id, "failed", "tests kept failing")
    assert done.status is RunStatus.FAILED and done.finished
    assert done.detail == "tests kept failing"
    assert done.finished_at == done.updated_at == LATE_EVENING + timedelta(seconds=90)
    assert await runs.active() == []
    # The same outcome again is a no-op (a retried finish after a lost reply).
    assert await runs.finish(run.id, RunStatus.FAILED, "other words") == done


async def test_a_finished_run_cannot_change(runs: RunStore) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    await runs.checkpoint(run.id, "plan", "p")
    await runs.finish(run.id, RunStatus.SUCCEEDED)
    with pytest.raises(RunFinishedError, match="already finished as succeeded; it cannot become"):
        await runs.finish(run.id, RunStatus.FAILED)
    with pytest.raises(RunFinishedError, match="its steps can no longer change"):
        await runs.checkpoint(run.id, "push", "sha")
    with pytest.raises(RunFinishedError, match="start attempt 2 to try again"):
        await runs.start("g/app", 7, "dev", 1, "host-b")
    assert await runs.steps(run.id) == {"plan": "p"}
    assert (await runs.get(run.id)).worker == "host-a"
    retry = await runs.start("g/app", 7, "dev", 2, "host-b")
    assert retry.id != run.id and retry.attempt == 2 and not retry.finished


@pytest.mark.parametrize("status", ["running", "done", "", None])
async def test_finish_needs_a_final_status(runs: RunStore, status: object) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    with pytest.raises(ValueError, match="a run finishes as one of abandoned, blocked, failed"):
        await runs.finish(run.id, status)  # type: ignore[arg-type]
    assert not (await runs.get(run.id)).finished


async def test_an_unknown_run_id_is_reported_everywhere(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 404"):
        await runs.get(404)
    with pytest.raises(LookupError):
        await runs.steps(404)
    with pytest.raises(RunNotFoundError):
        await runs.checkpoint(404, "plan", {})
    with pytest.raises(RunNotFoundError):
        await runs.finish(404, "failed")
    with pytest.raises(RunNotFoundError):
        await runs.add_usage(404, 1, 1, 0.1)
    with pytest.raises(RunNotFoundError):
        await runs.set_session(404, "s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 7, "dev", 1, "w"), "project must be a non-empty string"),
        (("g/app", 0, "dev", 1, "w"), "iid must be an integer >= 1"),
        (("g/app", 7, " ", 1, "w"), "stage must be a non-empty string"),
        (("g/app", 7, "dev", 0, "w"), "attempt must be an integer >= 1"),
        (("g/app", 7, "dev", True, "w"), "attempt must be an integer >= 1"),
        (("g/app", 7, "dev", 1, ""), "worker must be a non-empty string"),
    ],
)
async def test_start_refuses_bad_arguments(
    runs: RunStore, args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await runs.start(*args)  # type: ignore[arg-type]
    assert await runs.active() == []


async def test_latest_and_active(runs: RunStore) -> None:
    assert await runs.latest("g/app", 7) is None
    dev1 = await runs.start("g/app", 7, "dev", 1, "w")
    await runs.finish(dev1.id, "failed")
    dev2 = await runs.start("g/app", 7, "dev", 2, "w")
    review = await runs.start("g/app", 7, "review", 1, "w")
    other = await runs.start("g/app", 8, "dev", 1, "w")
    assert (await runs.latest("g/app", 7)) == review
    assert (await runs.latest("g/app", 7, "dev")) == dev2
    assert await runs.latest("g/other", 7) is None
    assert [run.id for run in await runs.active()] == [dev2.id, review.id, other.id]


async def test_usage_adds_up_per_run_even_after_it_finished(runs: RunStore) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "w")
    await runs.add_usage(run.id, 1000, 200, 0.25)
    await runs.finish(run.id, "succeeded")
    late = await runs.add_usage(run.id, 10, 5, 0.5)  # the agent's final report came late
    assert (late.tokens_in, late.tokens_out, late.cost_usd) == (1010, 205, 0.75)
    assert late.status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ((-1, 0, 0.0), "tokens_in must be an integer >= 0"),
        ((0, 1.5, 0.0), "tokens_out must be an integer >= 0"),
        ((0, 0, -0.01), "cost_usd must be >= 0"),
        ((0, 0, float("inf")), "cost_usd must be a finite number"),
    ],
)
async def test_bad_usage_is_refused_and_nothing_is_counted(
    runs: RunStore, usage: tuple[object, object, object], message: str
) -> None:
    run = await runs.start("g/app", 7, "dev", 1, "w")
    with pytest.raises(ValueError, match=message):
        await runs.add_usage(run.id, *usage)  # type: ignore[arg-type]
    assert await runs.spend() == Spend(0, 0.0)


async def test_spend_sums_usage_over_windows_projects_and_issues(
    runs: RunStore, clock: ManualClock
) -> None:
    assert await runs.spend() == Spend(tokens=0, cost_usd=0.0)
    a7 = await runs.start("g/app", 7, "dev", 1, "w")
    a8 = await runs.start("g/app", 8, "dev", 1, "w")
    b1 = await runs.start("g/lib", 1, "dev", 1, "w")
    await runs.add_usage(a7.id, 100, 10, 1.0)  # 23:30, the evening before
    clock.advance(3600)  # 00:30: one run spans midnight
    await runs.add_usage(a7.id, 200, 20, 2.0)
    await runs.add_usage(a8.id, 300, 30, 4.0)
    clock.advance(3600)  # 01:30
    await runs.add_usage(b1.id, 400, 40, 8.0)

    assert await runs.spend() == Spend(1100, 15.0)
    assert await runs.spend(since=MIDNIGHT) == Spend(990, 14.0)
    assert await runs.spend(until=MIDNIGHT) == Spend(110, 1.0)
    # [since, until): usage recorded exactly at `until` belongs to the next window.
    one_am = MIDNIGHT + timedelta(hours=1, minutes=30)
    assert await runs.spend(since=MIDNIGHT, until=one_am) == Spend(550, 6.0)
    assert await runs.spend(since=one_am) == Spend(440, 8.0)
    assert await runs.spend(project="g/app") == Spend(660, 7.0)
    assert await runs.spend(project="g/app", iid=7) == Spend(330, 3.0)
    assert await runs.spend(project="g/app", iid=7, since=MIDNIGHT) == Spend(220, 2.0)
    # Another time zone names the same instant.
    paris_midnight = MIDNIGHT.astimezone(ZoneInfo("Europe/Paris"))
    assert await runs.spend(since=paris_midnight) == Spend(990, 14.0)


async def test_spend_refuses_naive_and_backwards_windows(runs: RunStore) -> None:
    with pytest.raises(ValueError, match="has no time zone; pass an aware datetime"):
        await runs.spend(since=datetime(2024, 3, 2))
    with pytest.raises(ValueError, match=r"spend window ends at .* before it starts"):
        await runs.spend(since=MIDNIGHT, until=MIDNIGHT - timedelta(seconds=1))


async def test_the_session_id_is_kept_for_resumption(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "session.sqlite3"
    db = await Database.open(path)
    store = RunStore(db, clock)
    run = await store.start("g/app", 7, "dev", 1, "w")
    clock.advance(5)
    updated = await store.set_session(run.id, "sess-42")
    assert updated.session_id == "sess-42"
    assert updated.updated_at == LATE_EVENING + timedelta(seconds=5)
    await db.close()
    db = await Database.open(path)
    try:
        resumed = await RunStore(db, clock).start("g/app", 7, "dev", 1, "w2")
        assert resumed.session_id == "sess-42"
        with pytest.raises(ValueError, match="session_id must be a non-empty string"):
            await RunStore(db, clock).set_session(run.id, "")
    finally:
        await db.close()


async def test_two_hosts_starting_the_same_attempt_share_one_run(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        started = await asyncio.gather(
            *[
                RunStore(db).start("g/app", 7, "dev", 1, f"w{index}")
                for index, db in enumerate([first, second] * 3)
            ]
        )
        assert len({run.id for run in started}) == 1
        assert len(await RunStore(first).active()) == 1
    finally:
        await first.close()
        await second.close()
