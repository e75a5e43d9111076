"""The control issue holds against people (SPEC §7, decision 0034): removing its label,
closing it or editing its description neither lifts a pause nor makes crewline file a second
one, and a look-alike is never adopted. Two hosts (two runtimes, two SQLite files) on one
simulator, strangers acting through their own tokens over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import gitlab
from gitlab.v4.objects import Project, ProjectIssue

from bot.app import Runtime
from bot.demo_goals import GOALS
from bot.fleet_commands import operator_pause
from forge.control import CONTROL_LABEL, CONTROL_MARKER
from sim.core.app import RunningSim
from sim.core.base import DEVELOPER, REPORTER
from tests.support.engine import PROJECT, file_goal, reach, root, state_of
from tests.support.sim_issues import add_user
from tests.test_fleet import two_hosts


def member(sim: RunningSim, username: str, level: int) -> gitlab.Gitlab:
    project_id = int(root(sim).projects.get(PROJECT).id)
    return gitlab.Gitlab(sim.base_url, private_token=add_user(sim, username, project_id, level))


@asynccontextmanager
async def two_hosts_and_a_stranger(
    sim: RunningSim, base: Path, username: str, level: int
) -> AsyncIterator[tuple[Runtime, Runtime, Project]]:
    """Two hosts on one simulator, and the project as ``username`` (a member at ``level``)
    sees it through their own token."""
    stranger = member(sim, username, level).projects.get(PROJECT, lazy=True)
    async with two_hosts(sim, base) as (a, b):
        yield a, b, stranger


async def paused_with_a_goal(
    a: Runtime, b: Runtime, scope: str | None, stranger: Project
) -> tuple[int, int, ProjectIssue]:
    """B files a goal, A pauses ``scope`` (a project, or every one): the goal's iid, the
    control issue's iid, and the control issue as the stranger may edit it."""
    goal = await file_goal(b, GOALS[0].title, GOALS[0].description)
    assert (await operator_pause(a, scope, paused=True)).changed
    control = await a.services.fleet.control.ensure(PROJECT)
    return goal.iid, control.iid, stranger.issues.get(control.iid)


def control_issues(sim: RunningSim, bot_id: int) -> list[int]:
    """Every issue crewline's bot filed whose description is the control issue's."""
    listed = (
        root(sim).projects.get(PROJECT).issues.list(author_id=bot_id, state="all", get_all=True)
    )
    return sorted(int(i.iid) for i in listed if CONTROL_MARKER in (i.description or ""))


async def test_removing_the_label_and_closing_it_lift_no_pause(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts_and_a_stranger(demo_sim, tmp_path, "mallory", REPORTER) as (a, b, mallory):
        goal, control, issue = await paused_with_a_goal(a, b, PROJECT, mallory)
        issue.labels = []
        issue.state_event = "close"
        issue.save()

        # Host B reads the fleet's state for the first time: still paused.
        assert await b.engine.tick() == 0
        assert b.services.fleet.paused(PROJECT)
        assert await state_of(b, goal) == "pm-ready"
        bot = (await b.services.gateway.trust.own()).bot_id
        assert control_issues(demo_sim, bot) == [control]
        # The refresh put the label back; the issue stays closed and keeps working.
        again = root(demo_sim).projects.get(PROJECT).issues.get(control)
        assert CONTROL_LABEL in again.labels and again.state == "closed"
        assert (await operator_pause(b, PROJECT, paused=False)).changed
        assert control_issues(demo_sim, bot) == [control]


async def test_editing_its_description_lifts_no_pause_and_files_no_second_one(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts_and_a_stranger(demo_sim, tmp_path, "mallory", DEVELOPER) as (
        a,
        b,
        mallory,
    ):
        goal, control, issue = await paused_with_a_goal(a, b, None, mallory)
        issue.description = "nothing to see here"
        issue.labels = []
        issue.save()

        assert await b.engine.tick() == 0  # B finds it by crewline's anchor note
        assert b.services.fleet.paused(PROJECT)
        assert await state_of(b, goal) == "pm-ready"
        await b.services.fleet.ensure()  # what `crewline run` does at start
        bot = (await b.services.gateway.trust.own()).bot_id
        # Repaired: crewline wrote its description back, so its marker counts again.
        assert control_issues(demo_sim, bot) == [control]
        assert (await b.services.fleet.control.find(PROJECT)) is not None


async def test_a_look_alike_is_never_the_control_issue(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts_and_a_stranger(demo_sim, tmp_path, "mallory", DEVELOPER) as (
        a,
        b,
        mallory,
    ):
        # A goal crewline filed, edited by mallory into a control issue (lower iid), and
        # mallory's own issue with the label and the marker.
        goal = await file_goal(a, GOALS[0].title, GOALS[0].description)
        edited = mallory.issues.get(goal.iid)
        edited.description = CONTROL_MARKER
        edited.labels = [CONTROL_LABEL]
        edited.save()
        mallory.issues.create(
            {"title": "crewline control", "description": CONTROL_MARKER, "labels": CONTROL_LABEL}
        )
        control = await a.services.fleet.control.ensure(PROJECT)
        assert control.iid > goal.iid
        assert (await operator_pause(a, PROJECT, paused=True)).changed
        assert await b.engine.tick() == 0 and b.services.fleet.paused(PROJECT)
        found = await b.services.fleet.control.find(PROJECT)
        assert found is not None and found.iid == control.iid


async def test_a_label_moved_by_a_reporter_past_the_plan_gate_executes_nothing(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """A Reporter may edit labels: moving a goal straight to dev-ready (no plan, no
    approval) must not make the developer run anything; the issue is blocked with why."""
    async with two_hosts_and_a_stranger(demo_sim, tmp_path, "rita", REPORTER) as (a, _b, rita):
        goal = await file_goal(a, GOALS[0].title, GOALS[0].description)
        issue = rita.issues.get(goal.iid)
        issue.labels = ["workflow::dev-ready"]
        issue.save()
        await reach(a, {goal.iid: "blocked"})
        mrs = root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)
        assert mrs == []
        bodies = [n.body for n in await a.services.gateway.notes(PROJECT, goal.iid)]
        assert any("no plan of this issue was approved at the plan gate" in b for b in bodies)


async def test_a_reporters_entry_label_on_crewlines_own_issue_starts_nothing(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """crewline filed the control issue; its authorship must not make it a goal when a
    Reporter adds the entry label to it."""
    async with two_hosts_and_a_stranger(demo_sim, tmp_path, "rita", REPORTER) as (a, _b, rita):
        control = await a.services.fleet.control.ensure(PROJECT)
        issue = rita.issues.get(control.iid)
        issue.labels = [CONTROL_LABEL, "workflow::pm-ready"]
        issue.save()
        for _ in range(2):
            assert await a.engine.tick() == 0
        assert await state_of(a, control.iid) == "pm-ready"  # never claimed
        bodies = [n.body for n in await a.services.gateway.notes(PROJECT, control.iid)]
        said = "crewline filed it, and @rita (who added `workflow::pm-ready`) has Reporter access"
        assert sum(said in body for body in bodies) == 1
