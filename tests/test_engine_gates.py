"""The engine's gates, in process against the seeded simulator: the plan gate's reject and
re-plan loop, the overlap wait, the learnings gate, the janitor's repairs and the
validation loop running out of attempts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.settings import ScheduleSettings
from roles.engine.janitor import sweep
from roles.gates.decide import decide_plan
from roles.notify import EventKind
from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from tests.support.engine import (
    PROJECT,
    configure,
    fake_agent,
    file_block,
    file_goal,
    goal_text,
    note_bodies,
    reach,
    root,
    runtime_for,
    state_of,
)

FEEDBACK = "use the stdlib only"


@pytest.fixture
def free_demo_sim(tmp_path: Path) -> Iterator[RunningSim]:
    """GitLab Free: two workflow labels can sit on one issue."""
    config = SimConfig(state_dir=tmp_path / "sim", seed="demo", tier="free")
    with running_sim(config) as running:
        yield running


def _prompt_of(runs_dir: Path, iid: int, run: str) -> str:
    """What the demo agent was asked in that run (it keeps each session's first prompt)."""
    sessions = sorted(
        (runs_dir / PROJECT.replace("/", "_") / str(iid) / run).glob("demo-session-*")
    )
    assert len(sessions) == 1, sessions
    return sessions[0].read_text(encoding="utf-8")


async def test_rejected_plan_goes_back_to_the_pm_with_the_feedback(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    description = goal_text("A greeting helper.", file_block("app/hello.py", "X = 1\n"))
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, log):
        runtime.services.desk = log  # records gate requests, decides nothing
        gateway, leases = runtime.services.gateway, runtime.storage.leases
        issue = await file_goal(runtime, "Add hello", description)
        await reach(runtime, {issue.iid: "plan-review"})
        first = log.gates[-1]
        assert (first.iid, first.gate) == (issue.iid, "plan-review")

        async def decide(revision: str, approve: bool, feedback: str = "") -> tuple[bool, str]:
            decision = await decide_plan(
                gateway, leases, PROJECT, issue.iid,
                revision=revision, approve=approve, who="ada", via="the test", feedback=feedback,
                worker=runtime.services.worker,
            )  # fmt: skip
            return decision.applied, decision.message

        applied, message = await decide(first.revision, approve=False)
        assert not applied and "feedback is required" in message
        assert await decide(first.revision, approve=False, feedback=FEEDBACK) == (
            True,
            "Plan changes requested by ada via the test.",
        )
        assert await state_of(runtime, issue.iid) == "pm-ready"
        decided = note_bodies(demo_sim, issue.iid)
        decision_note = next(body for body in decided if "Plan changes requested" in body)
        assert f"> {FEEDBACK}" in decision_note

        # The same decision again changes nothing and says so.
        applied, message = await decide(first.revision, approve=False, feedback=FEEDBACK)
        assert not applied and message.startswith("already decided at ")
        assert note_bodies(demo_sim, issue.iid) == decided
        assert await state_of(runtime, issue.iid) == "pm-ready"

        await reach(runtime, {issue.iid: "plan-review"})
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "pm")
        assert run is not None and run.attempt == 2
        runs_dir = runtime.config.runs_dir
        assert f"## Feedback on an earlier plan\n\n{FEEDBACK}\n" in _prompt_of(
            runs_dir, issue.iid, "pm-2"
        )
        assert FEEDBACK not in _prompt_of(runs_dir, issue.iid, "pm-1")
        second = log.gates[-1]
        assert second.revision != first.revision
        replanned = note_bodies(demo_sim, issue.iid)
        assert sum("### Plan" in body for body in replanned) == 2

        # A decision on the old plan is refused and leaves the new one waiting.
        applied, message = await decide(first.revision, approve=True)
        assert not applied and message.startswith("already decided at ")
        assert await state_of(runtime, issue.iid) == "plan-review"
        assert note_bodies(demo_sim, issue.iid) == replanned

        assert await decide(second.revision, approve=True) == (
            True,
            "Plan approved by ada via the test.",
        )
        assert await state_of(runtime, issue.iid) == "dev-ready"


async def test_overlapping_work_waits_until_the_first_is_done(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("slow_implement")})
    assert config.roles.dev.concurrency == 2  # room for both: only the overlap holds one back
    async with runtime_for(demo_sim, config) as (runtime, _):
        one = await file_goal(runtime, "Shared one", file_block("app/shared.py", "X = 1\n"))
        two = await file_goal(runtime, "Shared two", file_block("app/shared.py", "X = 2\n"))
        iids = (one.iid, two.iid)
        engine = runtime.engine
        reasons: dict[int, str] = {}
        started: list[int] = []
        deadline = time.monotonic() + 60
        while True:
            await engine.tick()
            states = {iid: await state_of(runtime, iid) for iid in iids}
            started += [i for i in iids if states[i] == "dev-running" and i not in started]
            assert list(states.values()).count("dev-running") < 2, states
            for iid in iids:
                waiting = engine.waiting.get((PROJECT, iid))
                if waiting is not None and waiting.role == "dev":
                    reasons.setdefault(iid, waiting.reason)
            if not engine.busy and set(states.values()) == {"review-ready"}:
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.1)
        first, second = started
        assert reasons == {second: f"#{first} is changing the same files (app/shared.py)"}
        runs = [await runtime.storage.runs.latest(PROJECT, iid, "dev") for iid in started]
        assert runs[0] is not None and runs[1] is not None and runs[0].finished_at is not None
        assert runs[1].started_at >= runs[0].finished_at


async def test_no_learnings_no_merge_request(demo_sim: RunningSim, tmp_path: Path) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("no_learnings")})
    description = goal_text("A helper.", file_block("app/helper.py", "X = 1\n"))
    async with runtime_for(demo_sim, config) as (runtime, _):
        issue = await file_goal(runtime, "Add helper", description)
        await reach(runtime, {issue.iid: "blocked"})
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "dev")
        assert run is not None and run.status == "blocked"
        steps = await runtime.storage.runs.steps(run.id)
        assert {"implement", "validate-1", "ask-learnings"} <= set(steps)
        assert "mr" not in steps
        assert await runtime.storage.learnings.search("demo", project=PROJECT) == []
    assert any("no learnings, no merge request" in b for b in note_bodies(demo_sim, issue.iid))
    assert not root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)


def _labels(sim: RunningSim, iid: int) -> set[str]:
    return set(root(sim).projects.get(PROJECT).issues.get(iid).labels)


def _file_by_hand(sim: RunningSim, title: str, labels: list[str]) -> int:
    project = root(sim).projects.get(PROJECT)
    issue = project.issues.create({"title": title, "labels": ",".join(labels)})
    return int(issue.iid)


async def test_janitor_repairs_two_workflow_labels_to_the_more_cautious(
    free_demo_sim: RunningSim, tmp_path: Path
) -> None:
    sim = free_demo_sim
    async with runtime_for(sim, configure(sim, tmp_path)) as (runtime, _):
        gated = _file_by_hand(
            sim, "Raced", ["workflow::dev-ready", "workflow::plan-review", "backend"]
        )
        stopped = _file_by_hand(
            sim, "Stopped by hand", ["workflow::pm-running", "workflow::blocked"]
        )
        assert {"workflow::dev-ready", "workflow::plan-review"} <= _labels(sim, gated)
        report = await sweep(runtime.services)
        assert report.repaired == [f"{PROJECT}#{gated}", f"{PROJECT}#{stopped}"]
        assert report.requeued == [] and report.failed == []
        assert _labels(sim, gated) == {"workflow::plan-review", "backend"}
        assert _labels(sim, stopped) == {"workflow::blocked"}
        assert (await sweep(runtime.services)).repaired == []


async def test_janitor_requeues_a_running_issue_with_no_claim_after_the_ttl(
    free_demo_sim: RunningSim, tmp_path: Path
) -> None:
    sim = free_demo_sim
    config = configure(sim, tmp_path, schedule=ScheduleSettings(claim_ttl_seconds=2))
    async with runtime_for(sim, config) as (runtime, log):
        iid = _file_by_hand(sim, "Orphan", ["workflow::dev-running"])
        # A claimer may be between moving the labels and posting its note: not yet.
        assert (await sweep(runtime.services)).requeued == []
        assert await state_of(runtime, iid) == "dev-running"
        # A whole TTL later by the janitor's clock (its only clock for expiry), not waited.
        claims = runtime.services.claims
        claims.clock = lambda: datetime.now(UTC) + timedelta(seconds=3)
        assert (await sweep(runtime.services)).requeued == [f"{PROJECT}#{iid}"]
        assert _labels(sim, iid) == {"workflow::dev-ready"}
        assert any(e.kind is EventKind.STUCK and e.iid == iid for e in log.events)
    assert any("re-queued (attempt 1 of 3 next)" in body for body in note_bodies(sim, iid))


async def test_validation_that_never_passes_ends_at_failed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path)
    config.roles.dev = config.roles.dev.model_copy(update={"max_attempts": 2})
    description = goal_text("Hopeless.", file_block("app/never.py", "X = 1\n"), "Check: false")
    async with runtime_for(demo_sim, config) as (runtime, log):
        issue = await file_goal(runtime, "Never passes", description)
        await reach(runtime, {issue.iid: "failed"})
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "dev")
        assert run is not None and run.status == "failed"
        steps = set(await runtime.storage.runs.steps(run.id))
        assert {"validate-1", "fix-1", "validate-2"} <= steps
        assert not {"validate-3", "fix-2", "mr"} & steps
        assert any(e.kind is EventKind.FAILED and e.iid == issue.iid for e in log.events)
    last = note_bodies(demo_sim, issue.iid)[-1]
    assert "Validation still fails after 2 attempts." in last
    assert "**NO-GO**: 1 of 2 checks failed." in last
    assert "| `false` | acceptance | ❌" in last
    assert not root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)
