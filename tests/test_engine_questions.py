"""An agent's question: the issue waits at needs-input, the answer resumes the same agent
session, and an unanswered question ends at blocked; stuck work is reported once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.config import CrewlineConfig
from bot.demo_goals import GOALS
from roles.engine.janitor import JanitorLimits, sweep
from roles.notify import EventKind
from roles.settings import AgentSettings
from roles.stuck import stuck_items
from roles.workspace.layout import project_dirname
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    drive,
    fake_agent,
    file_goal,
    note_bodies,
    reach,
    runtime_for,
    state_of,
)
from workflow import Outcome, next_state


def asking_config(sim: RunningSim, base: Path) -> CrewlineConfig:
    config = configure(
        sim,
        base,
        agents={
            "demo": AgentSettings(kind="demo", timeout_seconds=60),
            "asker": fake_agent("asks_first"),
        },
    )
    config.roles.pm.agent = "asker"
    return config


async def test_a_question_waits_and_the_answer_resumes_the_session(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, asking_config(demo_sim, tmp_path)) as (runtime, log):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "needs-input"})
        assert any(e.kind is EventKind.QUESTION and e.iid == issue.iid for e in log.events)
        questions = [b for b in note_bodies(demo_sim, issue.iid) if "key=question:pm-1" in b]
        assert len(questions) == 1 and "Should acronyms stay upper case?" in questions[0]
        # A human answers (what the Discord desk does), and the issue goes back to the PM.
        gateway, wf = runtime.services.gateway, runtime.services.workflow
        await gateway.upsert_note(
            PROJECT, issue.iid, "answer:pm-1", "Answer from @alice via Discord:\n\nYes, keep them."
        )
        back = next_state(wf, "needs-input", Outcome.ANSWERED, came_from="pm-running")
        await gateway.transition(PROJECT, issue.iid, back, expect={"needs-input"})
        await reach(runtime, {issue.iid: "review-ready"})
    turns = _turns(tmp_path, issue.iid)
    assert [turn["asked"] for turn in turns] == [True, False]
    assert turns[0]["given"] is None and turns[1]["given"] == turns[0]["session"]
    # Both PM attempts ran in the same read-only checkout of the target branch (CLIs that
    # scope sessions by directory find the session), and saw its files in the prompt.
    assert turns[0]["cwd"] == turns[1]["cwd"]
    planning = Path(str(turns[0]["cwd"]))
    assert planning.parts[-3] == "planning" and planning.name == str(issue.iid)
    assert planning.parts[-2] == project_dirname(PROJECT)
    assert all(turn["tree_shown"] for turn in turns)
    assert all(turn["readme_mode"] == "0o444" for turn in turns)
    assert not await asyncio.to_thread(planning.exists)  # removed after each PM run


def _turns(base: Path, iid: int) -> list[dict[str, object]]:
    """Every turn the agent logged, oldest first, across the issue's run directories."""
    logs = (base / "runs" / PROJECT.replace("/", "_") / str(iid)).glob("*/asks_first.log")
    ordered = sorted(logs, key=lambda log: log.stat().st_mtime_ns)
    return [json.loads(line) for log in ordered for line in log.read_text().splitlines()]


async def test_an_unanswered_question_ends_blocked_and_stuck_work_is_told_once(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, asking_config(demo_sim, tmp_path)) as (runtime, log):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "needs-input"})
        patient = await sweep(runtime.services, limits=JanitorLimits(answer_timeout=3600))
        assert patient.timed_out == [] and await state_of(runtime, issue.iid) == "needs-input"
        report = await sweep(runtime.services, limits=JanitorLimits(answer_timeout=0.001))
        assert report.timed_out == [f"{PROJECT}#{issue.iid}"]
        assert await state_of(runtime, issue.iid) == "blocked"
        assert any(
            "No answer to the agent's question" in b for b in note_bodies(demo_sim, issue.iid)
        )
        # Blocked work is stuck work: reported once per stay, listed with what to do.
        items = await stuck_items(runtime.services, stuck_after=3600)
        assert [(item.iid, item.state) for item in items] == [(issue.iid, "blocked")]
        assert "retry" in items[0].action
        told = [e for e in log.events if e.kind is EventKind.STUCK and e.iid == issue.iid]
        again = await sweep(runtime.services, limits=JanitorLimits(answer_timeout=0.001))
        assert again.stuck == [] and told
        assert len([e for e in log.events if e.kind is EventKind.STUCK]) == len(told)


async def test_work_without_a_transition_for_too_long_is_stuck(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path)
    config.roles.pm.enabled = False  # nobody picks it up
    async with runtime_for(demo_sim, config) as (runtime, _):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await drive(runtime, lambda: _true())
        assert await stuck_items(runtime.services, stuck_after=3600) == []
        items = await stuck_items(runtime.services, stuck_after=3600, by_state={"pm-ready": 0.001})
        assert [(item.iid, item.state) for item in items] == [(issue.iid, "pm-ready")]
        assert items[0].reason.startswith("no transition for")


async def _true() -> bool:
    return True


async def test_an_unchanged_issue_is_not_asked_again_when_it_entered_its_state(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """The janitor checks every waiting issue on every pass; label events are read again
    only for an issue that changed since (GitLab updates an issue on any label change)."""
    config = configure(demo_sim, tmp_path)
    config.roles.pm.enabled = False
    async with runtime_for(demo_sim, config) as (runtime, _):
        waiting = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        other = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
        audit = runtime.storage.audit

        async def label_event_reads() -> int:
            recent = await audit.recent(limit=1000)
            return sum(e.count for e in recent if e.what == "gitlab.issue.label_events")

        first = await stuck_items(runtime.services, stuck_after=3600, by_state={"pm-ready": 0.001})
        reads = await label_event_reads()
        assert [item.iid for item in first] == [waiting.iid, other.iid] and reads == 2
        again = await stuck_items(runtime.services, stuck_after=3600, by_state={"pm-ready": 0.001})
        assert [(i.iid, i.since) for i in again] == [(i.iid, i.since) for i in first]
        assert await label_event_reads() == reads

        await runtime.services.gateway.transition(PROJECT, other.iid, "blocked")
        moved = await stuck_items(runtime.services, stuck_after=3600, by_state={"pm-ready": 0.001})
        assert {(item.iid, item.state) for item in moved} == {
            (waiting.iid, "pm-ready"), (other.iid, "blocked"),
        }  # fmt: skip
        assert await label_event_reads() == reads + 1  # only the issue that moved
