"""The desk's operations on work: retry, re-queue, pause and resume, answers to agents'
questions, the stuck list, the board, the audit trail and learnings; against the simulator
and real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.desk_base import DeskError
from bot.identity import NotAllowed
from roles.engine.loop import PAUSE_ALL
from sim.core.app import RunningSim
from tests.support.desk import (
    ALICE,
    BOB,
    NOBODY,
    RITA,
    actor,
    ask,
    at_plan_review,
    audit_of,
    bodies,
    claim_note,
    desk_for,
    new_issue,
    walk,
)
from tests.support.engine import PROJECT, state_of


async def test_retry_returns_a_blocked_issue_to_its_stage_once(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue = await new_issue(runtime)
        await walk(runtime, issue.iid, "pm-running", "blocked")
        reply = await desk.retry(actor(BOB), PROJECT, issue.iid)
        assert reply.changed and reply.message == "demo/app#1 re-queued from blocked to pm-ready"
        assert await state_of(runtime, issue.iid) == "pm-ready"
        assert any(
            b.startswith("Re-queued to pm-ready by @bob via Discord.")
            for b in await bodies(runtime, 1)
        )
        again = await desk.retry(actor(ALICE), PROJECT, issue.iid)
        assert not again.changed
        assert again.message.startswith(
            "demo/app#1 is at pm-ready: only a blocked or failed issue can be retried (by @bob at "
        )
        assert await audit_of(runtime, "demo/app#1") == [
            ("discord:1002 gitlab:bob", "desk.retry", "ok"),
            ("discord:1001 gitlab:alice", "desk.retry", "unchanged"),
        ]


async def test_retry_of_a_failed_developer_run_goes_back_to_dev_ready(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue = await new_issue(runtime)
        await walk(
            runtime, issue.iid, "pm-running", "plan-review", "dev-ready", "dev-running", "failed"
        )
        with pytest.raises(NotAllowed):
            await desk.retry(actor(ALICE, approver=False), PROJECT, issue.iid)
        assert await state_of(runtime, issue.iid) == "failed"
        assert (await desk.retry(actor(ALICE), f"{PROJECT}", issue.iid)).changed
        assert await state_of(runtime, issue.iid) == "dev-ready"


async def test_requeue_only_when_the_claim_expired(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        live, dead = await new_issue(runtime, "live"), await new_issue(runtime, "dead")
        await walk(runtime, live.iid, "pm-running")
        await walk(runtime, dead.iid, "pm-running")
        await claim_note(runtime, live.iid, "pm", expired=False)
        await claim_note(runtime, dead.iid, "pm", expired=True)
        kept = await desk.requeue(actor(BOB), PROJECT, live.iid)
        assert not kept.changed and "worker gone-host holds a live claim until" in kept.message
        assert await state_of(runtime, live.iid) == "pm-running"
        moved = await desk.requeue(actor(BOB), PROJECT, dead.iid)
        assert moved.changed and moved.message == "demo/app#2 re-queued from pm-running to pm-ready"
        assert await state_of(runtime, dead.iid) == "pm-ready"
        assert any("Re-queued by @bob via Discord" in b for b in await bodies(runtime, dead.iid))
        plain = await desk.requeue(actor(BOB), PROJECT, dead.iid)
        assert not plain.changed and plain.message.startswith(
            "demo/app#2 is at pm-ready: only running work can be re-queued (by @bob at"
        )


async def test_pause_and_resume_globally_and_per_project(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        engine = runtime.engine
        assert (await desk.pause(actor(BOB), PROJECT)).message == (
            "demo/app paused: no host claims new work"
        )
        assert await engine.paused(PROJECT)
        # Written on the project's control issue, where every host reads it.
        control = await runtime.services.fleet.control.find(PROJECT)
        assert control is not None
        assert any(
            "paused=1" in body and "by @bob via Discord" in body
            for body in await bodies(runtime, control.iid)
        )
        twice = await desk.pause(actor(ALICE), PROJECT)
        assert not twice.changed and twice.message.startswith(
            "demo/app is already paused (by @bob at"
        )
        goal = await new_issue(runtime)
        assert await engine.tick() == 0  # nothing is claimed while paused
        assert await state_of(runtime, goal.iid) == "pm-ready"
        assert (await desk.pause(actor(ALICE))).changed
        resumed = await desk.resume(actor(ALICE), PROJECT)
        assert resumed.message == (
            "demo/app resumed (every project is still paused: /resume without a project lifts that)"
        )
        assert await engine.paused(PROJECT)
        assert (await desk.resume(actor(ALICE))).changed and not await engine.paused(PROJECT)
        assert not (await desk.resume(actor(ALICE))).changed
        with pytest.raises(NotAllowed):
            await desk.pause(actor(RITA))
        assert not await engine.paused(PROJECT)
        assert [what for _, what, _ in await audit_of(runtime, PAUSE_ALL)] == [
            "desk.pause",
            "desk.resume",
            "desk.resume",
            "desk.pause",
        ]
        # One control issue, and exactly one note per pause scope, edited in place.
        notes = await bodies(runtime, control.iid)
        for key in ("control:pause:all", "control:pause:project"):
            assert sum(f"key={key} -->" in body for body in notes) == 1


async def test_answers_resume_the_stage_once_every_question_has_one(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue = await new_issue(runtime)
        await walk(runtime, issue.iid, "pm-running")
        one = await ask(runtime, issue.iid, "pm-1", "Which greeting?")
        two = await ask(runtime, issue.iid, "pm-2", "English only?")
        await walk(runtime, issue.iid, "needs-input")
        asked = await desk.questions(PROJECT, issue.iid)
        assert [(q.run, q.text, q.answer) for q in asked] == [
            ("pm-1", "Which greeting?", None),
            ("pm-2", "English only?", None),
        ]
        first = await desk.answer(actor(ALICE), PROJECT, issue.iid, one.id, "Hello, world")
        assert (
            first.changed
            and first.message == "answer posted on demo/app#1; 1 more question(s) wait"
        )
        assert await state_of(runtime, issue.iid) == "needs-input"
        repeat = await desk.answer(actor(BOB), PROJECT, issue.iid, one.id, "Hi")
        assert not repeat.changed and "already answered at" in repeat.message
        assert "Answer from @alice via Discord" in repeat.message
        last = await desk.answer(actor(BOB), PROJECT, issue.iid, two.id, "Yes.")
        assert last.changed and last.message == "answer posted on demo/app#1; resumed at pm-ready"
        assert await state_of(runtime, issue.iid) == "pm-ready"
        answers = [b for b in await bodies(runtime, issue.iid) if b.startswith("Answer from")]
        assert answers[0].startswith("Answer from @alice via Discord:\n\nHello, world")
        assert f"key=answer:{one.id} " in answers[0] and f"key=answer:{two.id} " in answers[1]
        assert len(answers) == 2
        with pytest.raises(DeskError, match="the answer is empty"):
            await desk.answer(actor(BOB), PROJECT, issue.iid, two.id, "  ")
        with pytest.raises(NotAllowed):
            await desk.answer(actor(RITA), PROJECT, issue.iid, two.id, "No")


async def test_stuck_lists_what_needs_a_human(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        blocked, asking, dead, fine, finished = [
            await new_issue(runtime, title)
            for title in ("blocked", "asking", "dead", "fine", "done")
        ]
        await walk(runtime, blocked.iid, "pm-running", "blocked")
        await walk(runtime, asking.iid, "pm-running", "needs-input")
        await walk(runtime, dead.iid, "pm-running")
        await claim_note(runtime, dead.iid, "pm", expired=True)
        await at_plan_review(runtime, fine)
        await walk(runtime, finished.iid, "done")
        found = {item.ref: item for item in await desk.stuck(actor(RITA))}
        assert sorted(found) == ["demo/app#1", "demo/app#3"]
        assert found["demo/app#1"].action == "retry"
        assert found["demo/app#1"].reason.startswith("blocked: stopped")
        assert found["demo/app#3"].action == "requeue"
        assert "the claim of worker gone-host expired at" in found["demo/app#3"].reason
        runtime.config.schedule.stuck_after_seconds = 0.001
        found = {item.ref: item for item in await desk.stuck(actor(RITA))}
        assert sorted(found) == ["demo/app#1", "demo/app#2", "demo/app#3", "demo/app#4"]
        assert (found["demo/app#2"].action, found["demo/app#2"].hint) == (
            "",
            "answer the agent's question",
        )
        assert found["demo/app#4"].reason.startswith("no transition for ")
        assert found["demo/app#4"].action == "" and found["demo/app#3"].action == "requeue"


async def test_board_audit_and_learnings_are_readable_by_reporters_only(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        await desk.file_goal(
            actor(ALICE), title="Greet", description="", criteria="", request_id="g"
        )
        shown = await desk.board(actor(RITA))
        assert shown.counts["pm-ready"] == 1 and [i.title for i in shown.items] == ["Greet"]
        trail = await desk.audit_trail(actor(RITA), PROJECT, 1)
        whats = [entry.what for entry in trail]
        assert (
            "desk.goal" in whats and "gitlab.issue.create" not in whats
        )  # that one is on the project
        await runtime.storage.learnings.add(PROJECT, 1, "failure", "unittest needs the -v flag")
        found = await desk.learnings(actor(RITA), "unittest flag")
        assert [item.text for item in found] == ["unittest needs the -v flag"]
        with pytest.raises(DeskError, match="say what to look for"):
            await desk.learnings(actor(RITA), "  ")
        for read in (desk.board(actor(NOBODY)), desk.audit_trail(actor(NOBODY), PROJECT, 1)):
            with pytest.raises(NotAllowed):
                await read
        verdicts = [(what, v) for _, what, v in await audit_of(runtime, PROJECT)]
        assert ("desk.board", "ok") in verdicts and ("desk.board", "denied") in verdicts
