"""The chaos harness's own checks (bench/chaos_checks.py) and its kill accounting
(bench/chaos_host.py): a check that cannot fail, or kills that never happened, would make a
green chaos run prove nothing."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from chaos_checks import (
    Findings,
    RunRow,
    _double_pickups,
    _keyed_twice,
    _runs,
    rounds_held_twice,
)
from chaos_host import Host

from forge.claim_notes import ClaimMarker, iso
from forge.types import LabelEvent, Note
from storage import Database, RunStore
from tests.support.storage import ManualClock
from workflow import default_workflow

TTL = 120.0
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
WF = default_workflow()
DEV_READY = WF.ready_state("dev").label


def at(seconds: float) -> str:
    return iso(T0 + timedelta(seconds=seconds))


def claim(
    note_id: int, worker: str, posted: float, *, expires_in: float = TTL, ended: str | None = None
) -> Note:
    marker = ClaimMarker(
        worker, f"run-{note_id}", "dev", T0 + timedelta(seconds=posted + expires_in), ended
    )
    return Note(note_id, marker.body(), "crewline-bot", at(posted), at(posted), system=False)


def ready(event_id: int, seconds: float) -> LabelEvent:
    return LabelEvent(event_id, "add", DEV_READY, at(seconds), "crewline-bot")


def held_twice(notes: list[Note], events: list[LabelEvent]) -> list[str]:
    return rounds_held_twice("#1", notes, events, WF, TTL)


def test_two_released_claims_in_one_round_are_a_double_pickup() -> None:
    notes = [
        claim(10, "chaos-1", 5, ended="released"),
        claim(11, "chaos-2", 6, ended="released"),
    ]
    found = held_twice(notes, [ready(1, 0)])
    assert len(found) == 1
    assert "round 1 held by 2 claims" in found[0]
    assert "chaos-1" in found[0] and "chaos-2" in found[0]


def test_a_renewed_claim_and_a_released_one_in_one_round_are_a_double_pickup() -> None:
    notes = [
        claim(10, "chaos-1", 5, expires_in=TTL + 40),  # renewed once, then the host died
        claim(11, "chaos-2", 6, ended="released"),
    ]
    assert len(held_twice(notes, [ready(1, 0)])) == 1


def test_a_loser_left_behind_or_an_expired_winner_is_no_double_pickup() -> None:
    # The winner released; a loser's note that was never deleted (an orphan after a lost
    # response) was never renewed; an earlier round's winner expired unrenewed.
    notes = [
        claim(5, "chaos-3", 1, ended="expired"),
        claim(10, "chaos-1", 61, ended="released"),
        claim(11, "chaos-2", 62),
    ]
    assert held_twice(notes, [ready(1, 0), ready(2, 60)]) == []


def test_holders_of_successive_rounds_are_no_double_pickup() -> None:
    notes = [
        claim(10, "chaos-1", 5, expires_in=TTL + 80),
        claim(20, "chaos-2", 300, ended="released"),
    ]
    assert held_twice(notes, [ready(1, 0), ready(2, 250)]) == []


def test_claims_of_other_roles_have_rounds_of_their_own() -> None:
    review = ClaimMarker("chaos-2", "run-r", "review", T0 + timedelta(seconds=200), "released")
    notes = [
        claim(10, "chaos-1", 5, ended="released"),
        Note(11, review.body(), "crewline-bot", at(60), at(60), system=False),
    ]
    assert held_twice(notes, [ready(1, 0)]) == []


def test_a_keyed_note_twice_and_two_claim_notes_of_one_run_are_duplicates() -> None:
    found = Findings()
    marker = "<!-- crewline:note key=dev-1:handoff -->"
    twice = claim(10, "chaos-1", 5).body
    _keyed_twice("#3", [f"a\n{marker}", f"b\n{marker}", twice, twice, "plain"], found)
    assert found.duplicates == [
        "#3: note dev-1:handoff x2",
        "#3: 2 claim notes of run run-10",
    ]


def row(worker: str, attempt: int, start: float, end: float, moved: float | None = None) -> RunRow:
    return RunRow(
        worker,
        1,
        "dev",
        attempt,
        "succeeded",
        T0 + timedelta(seconds=start),
        T0 + timedelta(seconds=end),
        T0 + timedelta(seconds=moved) if moved is not None else None,
    )


def test_runs_of_one_round_or_overlapping_runs_of_two_hosts_are_double_pickups() -> None:
    found = Findings()
    _double_pickups([row("chaos-1", 1, 0, 10), row("chaos-2", 1, 20, 30)], found)
    assert found.double_pickups == ["#1 dev attempt 1 completed 2 times"]
    found = Findings()
    _double_pickups([row("chaos-1", 1, 0, 10), row("chaos-2", 2, 5, 30)], found)
    assert len(found.double_pickups) == 1 and "ran at once" in found.double_pickups[0]
    found = Findings()
    _double_pickups([row("chaos-1", 1, 0, 10), row("chaos-2", 2, 11, 30)], found)
    assert found.double_pickups == []


def test_a_run_whose_end_was_recorded_after_the_next_round_began_is_judged_by_its_move() -> None:
    """Killed between its completing move and recording its end, a run finishes its
    bookkeeping on restart, after the next round began: no double pickup. Still working
    (its move after the other run's start) it is one."""
    found = Findings()
    _double_pickups([row("chaos-1", 1, 0, 40, moved=10), row("chaos-2", 2, 20, 30)], found)
    assert found.double_pickups == []
    _double_pickups([row("chaos-1", 1, 0, 40, moved=25), row("chaos-2", 2, 20, 30)], found)
    assert len(found.double_pickups) == 1 and "ran at once" in found.double_pickups[0]


def test_a_long_run_is_compared_with_every_run_that_began_during_it() -> None:
    found = Findings()
    runs = [row("chaos-1", 1, 0, 50), row("chaos-1", 2, 10, 20), row("chaos-2", 3, 30, 40)]
    _double_pickups(runs, found)
    assert found.double_pickups == [
        "#1 dev: chaos-1 (attempt 1) and chaos-2 (attempt 3) ran at once"
    ]


async def test_a_hosts_runs_are_read_with_the_time_of_their_completing_move(
    tmp_path: Path,
) -> None:
    """The rows the overlap check judges come from a real host database: a run's work ends
    at its ``moved`` checkpoint, not at its claim or when it recorded its end."""
    clock = ManualClock(T0.timestamp())
    db = await Database.open(tmp_path / "host.sqlite3")
    try:
        runs = RunStore(db, clock)
        run = await runs.start("g/app", 1, "dev", 1, "chaos-1")
        await runs.checkpoint(run.id, "claim", {"run": "r1"})
        clock.advance(10)
        await runs.checkpoint(run.id, "moved", "dev-ready")
        clock.advance(30)
        await runs.finish(run.id, "succeeded")
        await runs.start("g/app", 1, "review", 1, "chaos-1")  # unfinished, never moved
    finally:
        await db.close()
    dev, review = sorted(_runs(tmp_path / "host.sqlite3", "g/app"), key=lambda r: r.stage)
    assert (dev.started, dev.moved, dev.finished) == (
        T0,
        T0 + timedelta(seconds=10),
        T0 + timedelta(seconds=40),
    )
    assert dev.work_ended == T0 + timedelta(seconds=10)
    assert (review.moved, review.finished, review.work_ended) == (None, None, None)


def host(tmp_path: Path, script: str) -> Host:
    return Host("h", [sys.executable, "-c", script], tmp_path / "h.log", {})


SLOW_START = "import time; time.sleep(2); print('up', flush=True); time.sleep(60)"


async def test_a_kill_counts_only_once_the_host_is_up_and_dies_of_it(tmp_path: Path) -> None:
    h = host(tmp_path, SLOW_START)
    await h.start()
    try:
        assert await h.kill() is False  # still starting: nothing happened
        assert h.skipped == 1
        for _ in range(100):
            if h.up:
                break
            await asyncio.sleep(0.1)
        assert h.up
        assert await h.kill() is True
        assert h.proc is not None and h.proc.returncode == -signal.SIGKILL
        await h.start()
        assert h.up is False  # the new life has not said so yet
    finally:
        await h.kill_now()


async def test_a_host_that_dies_by_itself_is_a_crash_unless_it_was_a_gate_kill(
    tmp_path: Path,
) -> None:
    crash = host(tmp_path, "print('up', flush=True); raise SystemExit(3)")
    await crash.start()
    assert crash.proc is not None
    await crash.proc.wait()
    await crash.ensure_running()
    await crash.kill_now()
    assert crash.crashes == ["h life 1 ended by itself with 3"]
    assert crash.lives == 2
    gate = host(
        tmp_path,
        "import os, signal; print('up', flush=True); print('gate-kill decision:1', flush=True);"
        " os.kill(os.getpid(), signal.SIGKILL)",
    )
    await gate.start()
    assert gate.proc is not None
    await gate.proc.wait()
    await gate.ensure_running()
    await gate.kill_now()
    assert gate.crashes == [] and gate.gate_kills == 1
