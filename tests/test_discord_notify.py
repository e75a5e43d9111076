"""The status channel, approval cards, questions and filer notices, sent through fake
channels by the queued sender: coalesced edits, one card per revision, and nothing lost
while Discord is away."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from bot.discord.digest import build_digest, digest_embed
from forge.types import Issue
from roles.notify import Event, EventKind, GateRequest
from sim.core.app import RunningSim
from tests.support.desk import ALICE, BOB, actor, ask, at_plan_review, new_issue, walk
from tests.support.discord_desk import bot_for, surface_for, user
from tests.support.discord_fakes import FakeDiscord, click, submit
from tests.support.engine import PROJECT, state_of
from tests.support.review_merge import wait_for

STATUS, APPROVALS = 700, 600


def moved(
    issue: Issue, frm: str, to: str, message: str = "", kind: EventKind = EventKind.TRANSITION
) -> Event:
    return Event(kind, PROJECT, issue.iid, issue.title, message, frm, to, issue.web_url)


async def test_one_status_message_per_issue_edited_in_place(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        world = FakeDiscord()
        issue = await new_issue(runtime, "Greet <@1> **now**")
        surface = surface_for(desk, world)
        surface.connected.clear()  # queued in SQLite while the sender waits: one status job
        for frm, to in (("pm-ready", "pm-running"), ("pm-running", "plan-review")):
            await surface.notify(moved(issue, frm, to, f"went to {to}"))
        await surface.notify(moved(issue, "pm-running", "plan-review", kind=EventKind.GATE))
        surface.connected.set()
        await surface.flush()
        [status] = world.channel(STATUS).messages
        embed = status.embeds[0]
        assert embed.title == "demo/app#1 Greet <\u200b@1> \\*\\*now\\*\\*"
        assert [(f.name, f.value) for f in embed.fields[:2]] == [
            ("State", "plan-review"),
            ("Owner", "a human"),
        ]
        assert status.thread is not None and status.thread.name == "demo/app#1 Greet <@1> **now**"
        details = [m.content for m in status.thread.messages]
        assert len(details) == 2 and "**pm-ready → pm-running**" in details[0]
        assert "went to pm-running" in details[0]

        await surface.notify(moved(issue, "plan-review", "dev-ready"))
        await surface.flush()
        assert len(world.channel(STATUS).messages) == 1 and len(status.edits) == 1
        assert status.embeds[0].fields[0].value == "dev-ready"
        await surface.stop()

        restarted = surface_for(desk, world)  # a new process: same SQLite, same message
        await restarted.notify(moved(issue, "dev-ready", "dev-running"))
        await restarted.flush()
        assert len(world.channel(STATUS).messages) == 1 and len(status.edits) == 2
        await restarted.stop()


async def test_a_burst_of_transitions_costs_one_edit(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        world = FakeDiscord()
        issue = await new_issue(runtime)
        surface = surface_for(desk, world)
        await surface.notify(moved(issue, "pm-ready", "pm-running"))
        await surface.flush()
        [status] = world.channel(STATUS).messages
        connected = surface.connected
        connected.clear()  # hold the sender while the burst arrives
        states = ["pm-running", "plan-review", "dev-ready", "dev-running", "review-ready"] * 4
        for frm, to in pairwise(states):
            await surface.notify(moved(issue, frm, to))
        connected.set()
        await surface.flush()
        assert len(status.edits) == 1 and status.embeds[0].fields[0].value == "review-ready"
        assert len(status.thread.messages) == 1 + len(states) - 1  # details are all kept
        await surface.stop()


async def test_cards_once_per_revision_and_their_buttons_work(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (bot, desk, runtime):
        world = FakeDiscord()
        await desk.file_goal(
            actor(ALICE), title="Greet", description="", criteria="", request_id="g"
        )
        issue, plan = await at_plan_review(
            runtime, await runtime.services.gateway.get_issue(PROJECT, 1)
        )
        gate = GateRequest(
            PROJECT, 1, "Greet", "plan-review", str(plan.id), "### Plan\n\nHi.", issue.web_url
        )
        surface = surface_for(desk, world)
        await surface.notify(moved(issue, "pm-running", "plan-review"))
        await surface.request(gate)
        await surface.request(gate)  # the engine asks again after a restart
        await surface.flush()
        [card] = world.channel(APPROVALS).messages
        thread = world.channel(STATUS).messages[0].thread
        assert (
            thread is not None
            and "**waiting at plan-review**\n```\n### Plan\n\nHi.\n```"
            in thread.messages[-1].content
        )
        fields = {f.name: f.value for f in card.embeds[0].fields}
        assert fields == {
            "Revision": f"plan note {plan.id}",
            "Cost so far": "$0.00",
            "Filed by": "@alice",
        }
        assert card.embeds[0].title == "Plan review: demo/app#1 Greet"
        clicked = await click(bot, card, card.custom_ids[0], user(BOB))
        assert clicked.followup.text == "Plan approved by @bob via Discord."
        assert await state_of(runtime, 1) == "dev-ready" and card.components == []
        await surface.request(replace(gate, revision="99999"))  # decided before it was sent
        await surface.flush()
        assert len(world.channel(APPROVALS).messages) == 1
        await surface.stop()


async def test_questions_in_the_thread_and_the_filer_is_told(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (bot, desk, runtime):
        world = FakeDiscord()
        await desk.file_goal(
            actor(ALICE), title="Greet", description="", criteria="", request_id="g"
        )
        issue = await runtime.services.gateway.get_issue(PROJECT, 1)
        await walk(runtime, 1, "pm-running")
        await ask(runtime, 1, "pm-1", "Which **greeting**? @here")
        await walk(runtime, 1, "needs-input")
        surface = surface_for(desk, world)
        await surface.notify(moved(issue, "pm-running", "needs-input"))
        await surface.notify(moved(issue, "pm-running", "needs-input"))  # told twice: asked once
        await surface.flush()
        [status] = world.channel(STATUS).messages
        asked = [m for m in status.thread.messages if m.custom_ids]
        assert len(asked) == 1 and "@\u200bhere" in asked[0].content
        assert asked[0].content.startswith("**An agent asks** on [demo/app#1](")
        opened = await click(bot, asked[0], asked[0].custom_ids[0], user(BOB))
        await submit(opened.modal, opened, answer="Hello")
        assert await state_of(runtime, 1) == "pm-ready"

        await surface.notify(
            moved(issue, "dev-running", "blocked", "budget reached: $5.00", EventKind.BLOCKED)
        )
        await surface.flush()
        [dm] = world.channel(ALICE).messages
        assert (
            dm.content.startswith("Your goal [demo/app#1 Greet](")
            and "is **blocked**" in dm.content
        )
        assert "budget reached: $5.00" in dm.content
        await surface.stop()


async def test_nothing_is_lost_while_discord_is_away(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        world = FakeDiscord()
        issue, plan = await at_plan_review(runtime)
        gate = GateRequest(
            PROJECT, 1, issue.title, "plan-review", str(plan.id), "Hi", issue.web_url
        )
        connected = asyncio.Event()  # the gateway is disconnected
        surface = surface_for(desk, world, connected)
        # The engine is never held up: a send waiting for the gateway would never return
        # (the bound is generous only because SQLite writes slow down on a loaded machine).
        await asyncio.wait_for(surface.notify(moved(issue, "pm-running", "plan-review")), 10)
        await asyncio.wait_for(surface.request(gate), 10)
        await asyncio.sleep(0.05)
        assert world.resolved == 0 and surface.pending == 4  # status, 2 details, card
        assert REGISTRY.get_sample_value("crewline_discord_queue_jobs") == 4
        world.down = True  # it reconnects, but Discord answers 503 for a while
        connected.set()
        await asyncio.sleep(0.1)
        assert world.resolved > 0 and surface.pending == 4 and not world.channel(APPROVALS).messages
        world.down = False
        await asyncio.wait_for(surface.flush(), 5)
        assert (
            len(world.channel(APPROVALS).messages) == 1 and len(world.channel(STATUS).messages) == 1
        )
        assert REGISTRY.get_sample_value("crewline_discord_queue_jobs") == 0
        await surface.stop()


class DiesAt:
    """``inner`` (a store of the surface's) whose ``method`` never returns: the process is
    killed there, after what it sent to Discord and before it recorded it."""

    def __init__(self, inner: Any, method: str) -> None:
        self.inner, self.method = inner, method

    def __getattr__(self, name: str) -> Any:
        if name != self.method:
            return getattr(self.inner, name)

        async def killed(*_: Any, **__: Any) -> None:
            await asyncio.Event().wait()

        return killed


async def test_what_discord_posted_is_not_posted_again(sim: RunningSim, tmp_path: Path) -> None:
    """Discord posted a message but its answer was lost (the job is tried again), or the
    process died before it recorded what it sent (the job is sent again after a restart):
    every message carries its job's nonce, so Discord answers with the one it posted."""
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        world = FakeDiscord()
        issue, plan = await at_plan_review(runtime)
        gate = GateRequest(
            PROJECT, 1, issue.title, "plan-review", str(plan.id), "Hi", issue.web_url
        )
        world.lose_answers = 4  # status message, its detail, the card, the plan's detail
        surface = surface_for(desk, world)
        await surface.notify(moved(issue, "pm-running", "plan-review"))
        await surface.request(gate)
        await asyncio.wait_for(surface.flush(), 5)
        assert world.lose_answers == 0
        [status] = world.channel(STATUS).messages
        assert len(world.channel(APPROVALS).messages) == 1
        assert status.thread is not None and len(status.thread.messages) == 2
        await surface.stop()

        other = await new_issue(runtime, "Killed twice")
        _, other_plan = await at_plan_review(runtime, other)
        dying = surface_for(desk, world)
        dying.kv = DiesAt(dying.kv, "set_json")  # killed once the thread exists
        await dying.notify(moved(other, "pm-running", "plan-review"))
        await wait_for("the status message", lambda: _sent(world, STATUS, 2))
        await dying.stop()
        restarted = surface_for(desk, world)
        restarted.cards = DiesAt(restarted.cards, "add")  # killed once the card is posted
        await restarted.request(replace(gate, iid=other.iid, revision=str(other_plan.id)))
        await wait_for("the card", lambda: _sent(world, APPROVALS, 2))
        await restarted.stop()
        again = surface_for(desk, world)
        await asyncio.wait_for(again.flush(), 5)
        try:
            assert len(world.channel(STATUS).messages) == 2
            assert len(world.channel(APPROVALS).messages) == 2
            shown = world.channel(STATUS).messages[1]
            assert shown.thread is not None and shown.thread.id == shown.id
            assert [m.content.count("plan-review") for m in shown.thread.messages] == [1, 1]
        finally:
            await again.stop()


async def _sent(world: FakeDiscord, channel: int, count: int) -> bool:
    return len(world.channel(channel).messages) >= count


async def test_the_digest_says_what_moved_what_is_stuck_and_the_spend(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        since = datetime.now(UTC) - timedelta(minutes=1)
        moving, stopped = await new_issue(runtime, "Moving"), await new_issue(runtime, "Stopped")
        await walk(runtime, moving.iid, "pm-running", "plan-review")
        await walk(runtime, stopped.iid, "pm-running", "blocked")
        run = await runtime.storage.runs.start(PROJECT, 1, "pm", 1, "host")
        await runtime.storage.runs.add_usage(run.id, 1000, 500, 0.25)
        digest = await build_digest(desk, since)
        assert [(m.ref, m.states) for m in digest.moved] == [
            ("demo/app#1", ["pm-ready", "pm-running", "plan-review"]),
            ("demo/app#2", ["pm-ready", "pm-running", "blocked"]),
        ]
        assert [item.ref for item in digest.stuck] == ["demo/app#2"]
        embed = digest_embed(digest)
        assert embed.fields[2].value == "$0.25, 1,500 tokens"
        world = FakeDiscord()
        surface = surface_for(desk, world)
        await surface.post_digest(embed)
        await surface.flush()
        assert world.channel(STATUS).messages[0].embeds[0].title.startswith("Daily digest since ")
        await surface.stop()
