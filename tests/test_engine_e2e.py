"""End to end: goals filed on the simulator go through the PM and developer roles, with
real agent subprocesses (the demo agent and fakes), real git and real SQLite."""

from __future__ import annotations

import asyncio
import random
import string
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from bot.settings import ScheduleSettings
from forge.claims import ClaimMarker
from roles.dependencies import dependency_admission
from roles.engine.janitor import sweep
from roles.engine.loop import Verdict
from roles.fleet_state import PAUSE_PROJECT
from roles.notify import EventKind
from roles.settings import BudgetSettings
from roles.validate import ValidationReport
from sim.core.app import RunningSim
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


async def test_straight_through_and_convergence(demo_sim: RunningSim, tmp_path: Path) -> None:
    straight, converging = GOALS[0], GOALS[1]
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, log):
        one = await file_goal(runtime, straight.title, straight.description)
        two = await file_goal(runtime, converging.title, converging.description)
        await reach(runtime, {one.iid: "review-ready", two.iid: "review-ready"})
        runs = runtime.storage.runs
        for issue, validations in ((one, 1), (two, 2)):
            run = await runs.latest(PROJECT, issue.iid, "dev")
            assert run is not None and run.status == "succeeded"
            steps = await runs.steps(run.id)
            assert sum(1 for step in steps if step.startswith("validate-")) == validations
        # The converging goal's first report failed, the second passed.
        run = await runs.latest(PROJECT, two.iid, "dev")
        assert run is not None
        steps = await runs.steps(run.id)
        first, second = (ValidationReport.from_json(steps[f"validate-{n}"]) for n in (1, 2))
        assert not first.go and second.go
        assert "test_y_is_not_a_vowel" in first.feedback_for_agent()
        learned = await runtime.storage.learnings.search("unittest", project=PROJECT)
        assert {item.iid for item in learned} == {one.iid, two.iid}

    project = root(demo_sim).projects.get(PROJECT)
    mrs = project.mergerequests.list(state="opened", get_all=True)
    assert sorted(mr.description.splitlines()[0] for mr in mrs) == [
        f"Closes #{one.iid}",
        f"Closes #{two.iid}",
    ]
    assert all(mr.draft for mr in mrs)
    branch = next(mr.source_branch for mr in mrs if f"#{one.iid}" in mr.description)
    assert branch.startswith(f"crewline/{one.iid}-")
    files = {item["path"] for item in project.repository_tree(ref=branch, recursive=True, all=True)}
    assert {"app/titles.py", "tests/test_titles.py"} <= files
    bodies = note_bodies(demo_sim, one.iid)
    assert sum("### Plan" in body for body in bodies) == 1
    assert sum("### Handoff" in body for body in bodies) == 1
    assert any("Plan approved by a tester" in body for body in bodies)
    handoff = next(body for body in bodies if "### Handoff" in body)
    assert "app/titles.py" in handoff and "python3 -m unittest" in handoff
    kinds = [event.kind for event in log.events if event.iid == one.iid]
    assert EventKind.GATE in kinds


async def test_invalid_plan_is_retried_once_then_blocked(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("garbage_plan")})
    async with runtime_for(demo_sim, config) as (runtime, _):
        issue = await file_goal(runtime, "Anything", "Do something useful.")
        await reach(runtime, {issue.iid: "blocked"})
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "pm")
        assert run is not None
        assert set(await runtime.storage.runs.steps(run.id)) >= {"agent-plan", "agent-plan-retry"}
    assert any("plan is still invalid after a retry" in b for b in note_bodies(demo_sim, issue.iid))


async def test_dependency_waits_and_a_cycle_blocks(demo_sim: RunningSim, tmp_path: Path) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        first = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        waiting = await file_goal(runtime, "Wait for the first", f"Depends on #{first.iid}")
        a = await file_goal(runtime, "Cycle A", f"Depends on #{a_iid(first.iid)}")
        b = await file_goal(runtime, "Cycle B", f"Depends on #{a.iid}")
        await reach(
            runtime,
            {
                first.iid: "review-ready",
                waiting.iid: "dev-ready",
                a.iid: "blocked",
                b.iid: "blocked",
            },
        )
        reason = runtime.engine.waiting[(PROJECT, waiting.iid)].reason
        assert reason == f"waiting for #{first.iid} to be done"
    bodies = note_bodies(demo_sim, a.iid)
    assert any(f"dependency cycle: #{a.iid} -> #{b.iid} -> #{a.iid}" in body for body in bodies)


async def test_dependencies_are_read_again_only_once_the_waiting_issue_changed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """A waiting issue is checked on every engine pass: its links and plan are read once,
    then again after it changed (here: a link, which GitLab records as a system note). Only
    "is blocked by" links are dependencies: "relates to" is mutual, it would be a cycle."""
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        services, gateway = runtime.services, runtime.services.gateway
        first = await file_goal(runtime, "First", "Nothing to wait for.")
        other = await file_goal(runtime, "Other", "Nothing to wait for either.")
        waiting = await file_goal(runtime, "Waits", f"Depends on #{first.iid}")

        async def admitted() -> tuple[Verdict, str]:
            admission = await dependency_admission(
                services, await gateway.get_issue(PROJECT, waiting.iid)
            )
            return admission.verdict, admission.reason

        async def link_reads() -> int:
            recent = await runtime.storage.audit.recent(limit=1000)
            return sum(e.count for e in recent if e.what == "gitlab.issue.links")

        assert await admitted() == (Verdict.WAIT, f"waiting for #{first.iid} to be done")
        reads = await link_reads()
        assert await admitted() == (Verdict.WAIT, f"waiting for #{first.iid} to be done")
        assert await link_reads() == reads  # unchanged: nothing read again

        project = root(demo_sim).projects.get(PROJECT)
        project.issues.update(first.iid, {"state_event": "close"})
        assert (await admitted())[0] is Verdict.GO  # the dependency itself is read fresh
        links = project.issues.get(waiting.iid, lazy=True).links
        links.create({"target_project_id": PROJECT, "target_issue_iid": other.iid})
        assert (await admitted())[0] is Verdict.GO  # related to, not blocked by
        assert await link_reads() == reads + 1  # it changed: read again
        blocker = await file_goal(runtime, "Blocker", "It must be done first.")
        links.create(
            {
                "target_project_id": PROJECT,
                "target_issue_iid": blocker.iid,
                "link_type": "is_blocked_by",
            }
        )
        assert await admitted() == (Verdict.WAIT, f"waiting for #{blocker.iid} to be done")


def a_iid(first: int) -> int:
    """Cycle A is filed third and names Cycle B, filed fourth."""
    return first + 3


async def test_ownership_breach_blocks_naming_the_files(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    description = goal_text(
        "A helper that should only touch app/greet.py.",
        file_block("app/greet.py", 'def greet(name: str) -> str:\n    return f"hi {name}"\n'),
        file_block("deploy/secret_tweak.py", "X = 1\n", first_attempt=True),
    )
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        issue = await file_goal(runtime, "Add greet", description)
        await reach(runtime, {issue.iid: "blocked"})
    notes = note_bodies(demo_sim, issue.iid)
    assert any("outside the plan's owned paths: `deploy/secret_tweak.py`" in b for b in notes)
    assert not root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)


async def test_an_issue_cap_holds_the_issue_at_ready_with_one_notice(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("costly")})
    config.roles.budgets = BudgetSettings(issue_usd=2.0)
    async with runtime_for(demo_sim, config) as (runtime, log):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "dev-ready"})  # planned (one turn), auto-approved
        for _ in range(3):  # held there, pass after pass, without a second notice
            assert await runtime.engine.tick() == 0
        assert await state_of(runtime, issue.iid) == "dev-ready"
        spent = await runtime.storage.runs.spend(project=PROJECT, iid=issue.iid)
        assert spent.cost_usd == pytest.approx(2.5)  # the PM's one turn, nothing after it
        waiting = runtime.engine.waiting[(PROJECT, issue.iid)]
        assert waiting.reason == "budget: issue budget reached: $2.50 spent of $2.00"
        runtime.services.roles.budgets.issue_usd = 10.0  # the cap raised: it goes on
        await reach(runtime, {issue.iid: "review-ready"})
    notes = note_bodies(demo_sim, issue.iid)
    held = [body for body in notes if "issue budget reached: $2.50 spent of $2.00" in body]
    assert len(held) == 1 and "holding this issue where it is" in held[0]
    assert [e.kind for e in log.events if e.iid == issue.iid].count(EventKind.BUDGET) == 1
    assert not any(e.kind is EventKind.BLOCKED for e in log.events)


async def test_paused_project_claims_nothing(demo_sim: RunningSim, tmp_path: Path) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        fleet = runtime.services.fleet
        assert await fleet.set_pause(PROJECT, PAUSE_PROJECT, True, "a tester")
        assert await runtime.engine.tick() == 0
        assert await state_of(runtime, issue.iid) == "pm-ready"
        assert await fleet.set_pause(PROJECT, PAUSE_PROJECT, False, "a tester")
        assert await runtime.engine.tick() == 1
        await runtime.engine.drain()
        assert await state_of(runtime, issue.iid) == "dev-ready"  # planned, auto-approved


async def test_killed_workers_claim_expires_and_another_host_finishes(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    schedule = ScheduleSettings(claim_ttl_seconds=2)
    doomed = configure(
        demo_sim,
        tmp_path / "a",
        worker_id="host-a",
        agents={"demo": fake_agent("hangs_on_implement")},
        schedule=schedule,
    )
    async with runtime_for(demo_sim, doomed) as (a, _):
        issue = await file_goal(a, GOALS[0].title, GOALS[0].description)
        for _ in range(200):
            await a.engine.tick()
            if await state_of(a, issue.iid) == "dev-running":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # the agent is at work now
        assert await state_of(a, issue.iid) == "dev-running"
        # host-a dies here: its runtime stops without transitioning or releasing anything.
    # host-b renews on the default TTL: a 2 s claim of its own would lapse under a loaded suite.
    survivor = configure(demo_sim, tmp_path / "b", worker_id="host-b")
    async with runtime_for(demo_sim, survivor) as (b, _):
        requeued: list[str] = []
        for _ in range(100):
            requeued += (await sweep(b.services)).requeued
            if requeued:
                break
            await asyncio.sleep(0.2)
        assert requeued == [f"{PROJECT}#{issue.iid}"]
        await reach(b, {issue.iid: "review-ready"})
    bodies = note_bodies(demo_sim, issue.iid)
    assert any("re-queued (attempt 2 of 3 next)" in body for body in bodies)
    dev_claims = [m for m in map(ClaimMarker.parse, bodies) if m is not None and m.role == "dev"]
    assert [(m.worker, m.ended) for m in dev_claims] == [
        ("host-a", "expired"),
        ("host-b", "released"),
    ]


async def test_a_secret_in_the_agents_work_is_never_pushed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    token = "glpat-" + "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=20))
    description = goal_text(
        "A settings module.",
        file_block("app/settings.py", f'GITLAB_TOKEN = "{token}"\n'),
    )
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        # A human files it directly in GitLab: crewline itself would refuse to write the token.
        filed = (
            root(demo_sim)
            .projects.get(PROJECT)
            .issues.create(
                {
                    "title": "Add settings",
                    "description": description,
                    "labels": "workflow::pm-ready",
                }
            )
        )
        issue = await runtime.services.gateway.get_issue(PROJECT, filed.iid)
        await reach(runtime, {issue.iid: "blocked"})
        verdicts = [
            e.verdict for e in await runtime.storage.audit.recent(50) if e.what == "git.push"
        ]
        assert verdicts == ["blocked:secret.gitlab_token"]
    project = root(demo_sim).projects.get(PROJECT)
    assert [b.name for b in project.branches.list(get_all=True)] == ["main"]
    notes = note_bodies(demo_sim, issue.iid)
    assert any("The change was not pushed" in body and "app/settings.py" in body for body in notes)
    assert not any(token in body for body in notes)
