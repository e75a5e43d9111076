"""One fleet: two hosts (two runtimes, two SQLite files) on one simulator share the pause,
their spend and their learnings through each project's control issue (decision 0027)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from bot.app import Runtime
from bot.demo_goals import GOALS
from bot.fleet_commands import operator_pause
from bot.status import board, fleet_lines
from forge.control import CONTROL_LABEL, CONTROL_MARKER
from roles.compaction import LearningItem, learnings_from_markdown, learnings_markdown
from roles.notify import EventLog
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    fake_agent,
    file_goal,
    reach,
    root,
    runtime_for,
    state_of,
)
from tests.support.faults import lose_answer, rules


@asynccontextmanager
async def two_hosts(
    sim: RunningSim, base: Path, **changes: object
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    async with AsyncExitStack() as stack:
        hosts = []
        for name in ("host-a", "host-b"):
            config = configure(sim, base / name, worker_id=name, **changes)
            runtime, _ = await stack.enter_async_context(runtime_for(sim, config, log=EventLog()))
            runtime.services.fleet.max_age = 0  # read GitLab on every pass (a poll each)
            hosts.append(runtime)
        yield hosts[0], hosts[1]


def control_issues(sim: RunningSim) -> list[int]:
    project = root(sim).projects.get(PROJECT)
    listed = project.issues.list(labels=[CONTROL_LABEL], state="all", get_all=True)
    return sorted(int(issue.iid) for issue in listed)


async def test_a_pause_from_one_host_stops_the_other_hosts_claiming(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts(demo_sim, tmp_path) as (a, b):
        goal = await file_goal(b, GOALS[0].title, GOALS[0].description)
        paused = await operator_pause(a, None, paused=True)
        assert paused.changed and paused.message == "every project paused: no host claims new work"
        assert await b.engine.tick() == 0 and await a.engine.tick() == 0
        assert await state_of(b, goal.iid) == "pm-ready"
        with pytest.raises(ValueError, match="nobody/else is not a configured project"):
            await operator_pause(b, "nobody/else", paused=True)
        again = await operator_pause(b, None, paused=True)  # B reads the same flag
        assert not again.changed and again.message == "every project is already paused"
        assert (await operator_pause(a, None, paused=False)).changed
        assert await b.engine.tick() == 1
        await b.engine.drain()
        assert await state_of(b, goal.iid) == "dev-ready"
    assert len(control_issues(demo_sim)) == 1


async def test_the_control_issue_is_read_once_per_poll_or_when_a_webhook_says(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts(demo_sim, tmp_path) as (a, b):
        control = await a.services.fleet.control.ensure(PROJECT)
        b.services.fleet.max_age = 3600  # a long poll interval
        assert await b.engine.tick() == 0  # read now: nothing to do, nothing paused
        assert (await operator_pause(a, PROJECT, paused=True)).changed
        early = await file_goal(b, GOALS[0].title, GOALS[0].description)
        b.services.fleet.changed(PROJECT, early.iid)  # an event about another issue
        assert await b.engine.tick() == 1  # B has not read the pause yet: its next poll will
        await b.engine.drain()
        late = await file_goal(b, GOALS[1].title, GOALS[1].description)
        b.services.fleet.changed(PROJECT, control.iid)  # the note event of the pause
        assert await b.engine.tick() == 0
        assert await b.engine.paused(PROJECT)
        assert await state_of(b, late.iid) == "pm-ready"


async def test_a_pause_written_by_someone_else_is_ignored(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    human = root(demo_sim).projects.get(PROJECT)
    # A look-alike filed by a person first: its marker is not crewline's, it is not adopted.
    fake = human.issues.create(
        {"title": "crewline control", "description": CONTROL_MARKER, "labels": CONTROL_LABEL}
    )
    async with two_hosts(demo_sim, tmp_path) as (a, b):
        control = await a.services.fleet.control.ensure(PROJECT)
        assert control.iid != fake.iid
        forged = "<!-- crewline:pause paused=1 -->\n\n<!-- crewline:note key=control:pause:all -->"
        for iid in (fake.iid, control.iid):
            human.issues.get(iid).notes.create({"body": forged})
        goal = await file_goal(b, GOALS[0].title, GOALS[0].description)
        assert await b.engine.tick() == 1  # not paused: only crewline's own notes count
        await b.engine.drain()
        assert await state_of(b, goal.iid) == "dev-ready"
        assert not b.services.fleet.paused(PROJECT)


async def test_one_control_issue_when_the_create_answer_is_lost(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts(demo_sim, tmp_path) as (a, b):
        lost = lose_answer(demo_sim, "POST", r"/issues$")
        made = await a.services.fleet.control.ensure(PROJECT)
        assert [rule["hits"] for rule in rules(demo_sim) if rule["id"] == lost["id"]] == [1]
        assert (await b.services.fleet.control.ensure(PROJECT)).iid == made.iid
    assert control_issues(demo_sim) == [made.iid]


async def test_a_learning_recorded_by_one_host_is_found_by_the_other(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with two_hosts(demo_sim, tmp_path) as (a, b):
        goal = await file_goal(a, GOALS[0].title, GOALS[0].description)
        await reach(a, {goal.iid: "review-ready"})  # the developer posted its learnings
        assert await b.storage.learnings.search("unittest discover", project=PROJECT) == []
        await b.engine.tick()  # B's poll reads the fleet's state and indexes new learnings
        found = await b.storage.learnings.search("unittest discover", project=PROJECT)
        assert [(item.iid, item.kind) for item in found] == [(goal.iid, "remember")]
        assert "python3 -m unittest discover" in found[0].text
        await b.services.fleet.refresh()  # read again: nothing is indexed twice
        assert len(await b.storage.learnings.for_issue(PROJECT, goal.iid)) == 2
        await a.services.fleet.refresh()  # A has them from its own run: not twice either
        assert len(await a.storage.learnings.for_issue(PROJECT, goal.iid)) == 2


async def test_daily_caps_compare_the_fleets_sum(demo_sim: RunningSim, tmp_path: Path) -> None:
    async with two_hosts(demo_sim, tmp_path, agents={"demo": fake_agent("costly")}) as (a, b):
        await a.services.fleet.ensure()
        first = await file_goal(a, GOALS[0].title, GOALS[0].description)
        await reach(a, {first.iid: "review-ready"})
        spent_by_a = (await a.storage.runs.spend(project=PROJECT)).cost_usd
        assert spent_by_a == pytest.approx(5.0)  # the plan and the implementation
        await a.engine.tick()  # A's poll publishes its spend on the control issue
        for budgets in (a.services.roles.budgets, b.services.roles.budgets):
            budgets.fleet_day_usd = 4.0  # under it for B alone, over it for the fleet
        second = await file_goal(b, GOALS[1].title, GOALS[1].description)
        assert await b.engine.tick() == 0
        assert await state_of(b, second.iid) == "pm-ready"
        assert b.services.fleet.others_spend().cost_usd == pytest.approx(5.0)
        reason = b.engine.waiting[(PROJECT, second.iid)].reason
        assert reason == "budget: fleet daily budget reached: $5.00 spent today of $4.00"
        assert (await b.storage.runs.spend()).cost_usd == 0


async def test_status_shows_the_fleet(demo_sim: RunningSim, tmp_path: Path) -> None:
    async with two_hosts(demo_sim, tmp_path, agents={"demo": fake_agent("costly")}) as (a, b):
        first = await file_goal(a, GOALS[0].title, GOALS[0].description)
        await reach(a, {first.iid: "review-ready"})
        second = await file_goal(a, GOALS[1].title, GOALS[1].description)
        a.services.roles.dev.enabled = False
        await reach(a, {second.iid: "dev-ready"})
        await a.engine.tick()  # publishes A's spend today: two plans and one change
        ready = await b.services.gateway.get_issue(PROJECT, second.iid)
        claim = await b.services.claims.claim(ready, "dev", "run-b1")  # B works on it
        assert claim is not None
        await operator_pause(b, PROJECT, paused=True)
        shown = await board(a)  # as `crewline status` on host A shows it
    fleet = shown.fleet
    assert fleet is not None
    assert fleet.paused == {PROJECT: "paused"}
    hosts = {host.worker: host for host in fleet.hosts}
    assert sorted(hosts) == ["host-a", "host-b"]
    assert hosts["host-a"].runs == [] and hosts["host-a"].spent_usd == pytest.approx(7.5)
    assert [run.rsplit(" for ", 1)[0] for run in hosts["host-b"].runs] == [
        f"{PROJECT}#{second.iid} dev"
    ]
    assert hosts["host-b"].spent_usd == 0
    assert fleet.spent_usd == pytest.approx(7.5) and fleet.tokens == 3 * 15000
    printed = "\n".join(fleet_lines(fleet))
    assert f"  {PROJECT}: paused" in printed
    assert "  host host-a: no live claims; spent today $7.50, 45,000 tokens" in printed
    assert f"  host host-b: {PROJECT}#{second.iid} dev for " in printed
    assert "  fleet spend today: $7.50, 45,000 tokens" in printed


def test_a_learnings_note_reads_back_as_it_was_written() -> None:
    items = [
        LearningItem("failure", "the first attempt broke\n- a line like an item\n\nand more"),
        LearningItem("remember", "tests run with `python3 -m unittest`"),
    ]
    note = f"{learnings_markdown(items)}\n\n<!-- crewline:note key=dev-1:learnings -->"
    assert learnings_from_markdown(note) == items
    assert learnings_from_markdown("Some other note\n- **remember**: not ours") == []
