"""Crash attempts count per stage and round, apart from dev<->QA round trips: an issue QA
sent back three times is not one crash away from failing. Both places that spend attempts
are checked against real claim notes in the simulator: the engine, when a run crashes, and
the janitor, when a claim expired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import Runtime
from forge.claims import ClaimMarker
from forge.markers import note_marker
from forge.types import Issue, Note
from roles.attempts import claims_of, round_attempt
from roles.budget import HOLD_KEY
from roles.context import RunContext, Services
from roles.engine.janitor import sweep
from roles.engine.loop import GO, Admission, RoleResult
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, note_bodies, runtime_for, state_of

ROUNDS = ("dev", "review", "qa") * 3  # three round trips: QA sent the work back each time


def _note(note_id: int, role: str) -> Note:
    marker = ClaimMarker("w", f"run-{note_id}", role, datetime.now(UTC), ended="released")
    return Note(note_id, marker.body(), "crewline-bot", "", "", False)


def test_a_round_attempt_counts_only_the_claims_since_another_role_claimed() -> None:
    history = [_note(i, role) for i, role in enumerate([*ROUNDS, "dev", "dev"], start=1)]
    assert round_attempt(history, "dev") == 2  # two crashes in this round
    assert claims_of(history, "dev") == 5  # the run number stays unique across rounds
    assert round_attempt(history, "qa") == 0  # nothing claimed for QA yet in this round
    assert round_attempt(list(reversed(history)), "dev") == 2  # note ids decide the order


def test_a_budget_hold_starts_a_fresh_round() -> None:
    """A run stopped by the day's budget did not crash: the claims before its hold notice
    do not count against the next attempt."""
    hold = Note(
        3, f"held\n\n{note_marker(f'{HOLD_KEY}:2026-12-03')}", "crewline-bot", "", "", False
    )
    history = [_note(1, "dev"), _note(2, "dev"), hold, _note(4, "dev")]
    assert round_attempt(history, "dev") == 1
    assert round_attempt(history[:2], "dev") == 2  # without the hold: two crashes
    assert claims_of(history, "dev") == 3  # the run's number still counts every claim


def test_a_runs_number_ignores_the_losers_of_its_own_round() -> None:
    """A chaos run numbered two QA runs of different rounds "qa-2" on two hosts: the first
    round's winner counted a loser's claim note (a higher id, deleted a moment later), the
    next round's winner no longer saw it. Counting up to the run's own claim note gives
    every round its own number, whenever the loser's note is read or deleted."""
    first_round = [_note(1, "qa"), _note(2, "qa")]  # winner 1, loser 2 not deleted yet
    assert claims_of(first_round, "qa", upto=1) == 1
    second_round = [_note(1, "qa"), _note(3, "qa")]  # the loser's note is gone
    assert claims_of(second_round, "qa", upto=3) == 2


async def _history(runtime: Runtime, iid: int, roles: tuple[str, ...]) -> None:
    """Claim notes of earlier runs, all finished, as the hosts that ran them left them."""
    gateway = runtime.services.gateway
    past = datetime.now(UTC) - timedelta(hours=1)
    for n, role in enumerate(roles):
        marker = ClaimMarker("old-host", f"run-{n}", role, past, ended="released")
        await gateway.post_note(PROJECT, iid, marker.body())


async def test_the_janitor_requeues_an_expired_claim_after_round_trips(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        gateway = runtime.services.gateway
        issue = await gateway.create_issue(PROJECT, "Bounced", "Sent back three times.")
        await _history(runtime, issue.iid, ROUNDS)
        await gateway.transition(PROJECT, issue.iid, "dev-ready")
        await gateway.transition(PROJECT, issue.iid, "dev-running")
        expired = datetime.now(UTC) - timedelta(minutes=5)
        await gateway.post_note(
            PROJECT, issue.iid, ClaimMarker("dead-host", "run-x", "dev", expired).body()
        )
        report = await sweep(runtime.services)
        assert report.requeued == [issue.ref] and report.failed == []
        assert await state_of(runtime, issue.iid) == "dev-ready"
    assert any("re-queued (attempt 2 of 3 next)" in b for b in note_bodies(demo_sim, issue.iid))


class _CrashingQa:
    """The QA role with its run replaced by a crash (an agent host out of memory, a bug)."""

    name = "qa"

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return GO

    async def run(self, ctx: RunContext) -> RoleResult:
        raise RuntimeError("the runner host ran out of memory")


async def test_a_crash_after_round_trips_is_retried_not_failed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path, through_qa=True)) as (
        runtime,
        _,
    ):
        gateway = runtime.services.gateway
        issue = await gateway.create_issue(PROJECT, "Bounced", "QA sent it back three times.")
        await _history(runtime, issue.iid, (*ROUNDS, "dev", "review"))
        runtime.engine.roles["qa"] = _CrashingQa()
        await gateway.transition(PROJECT, issue.iid, "qa-ready")
        await runtime.engine.tick()
        for _ in range(100):
            if not runtime.engine.busy:
                break
            await asyncio.sleep(0.1)
        assert await state_of(runtime, issue.iid) == "qa-ready"
    bodies = note_bodies(demo_sim, issue.iid)
    assert any("attempt 1 of 3 stopped (RuntimeError" in body for body in bodies)
    assert not any("failed:" in body for body in bodies)
