"""The Discord surface fed by GitLab: transitions another host made reach the status channel,
a gate another host reached gets its card, a card whose gate was decided in GitLab says so
and loses its buttons; and what was queued survives a restart (the SQLite outbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.app import Runtime
from bot.discord.feed import DiscordFeed
from bot.discord.notify import DiscordSurface
from roles.notify import Event, EventKind
from sim.core.app import RunningSim
from tests.support.desk import at_plan_review, new_issue, post_plan, walk
from tests.support.discord_desk import bot_for, surface_for
from tests.support.discord_fakes import FakeDiscord
from tests.support.engine import PROJECT

STATUS, APPROVALS = 700, 600


@asynccontextmanager
async def fed(
    sim: RunningSim, base: Path
) -> AsyncIterator[tuple[Runtime, FakeDiscord, DiscordSurface, DiscordFeed]]:
    """The run host's surface over a fake Discord, and its feed (polled by hand)."""
    async with bot_for(sim, base) as (_, desk, runtime):
        world = FakeDiscord()
        surface = surface_for(desk, world)
        try:
            yield runtime, world, surface, DiscordFeed(surface, poll_seconds=60)
        finally:
            await surface.stop()


async def test_another_hosts_transitions_and_gates_reach_discord_once(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with fed(sim, tmp_path) as (runtime, world, surface, feed):
        # Another host claims and plans: nothing of it went through this surface.
        issue, plan = await at_plan_review(runtime)
        assert await feed.poll() == 1
        await surface.flush()
        [status] = world.channel(STATUS).messages
        assert status.embeds[0].fields[0].value == "plan-review"
        [card] = world.channel(APPROVALS).messages
        assert card.embeds[0].title.startswith("Plan review: demo/app#1")
        fields = {f.name: f.value for f in card.embeds[0].fields}
        assert fields["Revision"] == f"plan note {plan.id}" and len(card.custom_ids) == 2

        assert await feed.poll() == 0  # nothing new: no second card, no edit
        await surface.flush()
        assert len(world.channel(APPROVALS).messages) == 1 and status.edits == []

        # Decided in GitLab (a 👍 applied by another host): the issue left the gate.
        await walk(runtime, issue.iid, "dev-ready")
        assert await feed.poll() == 1
        await surface.flush()
        assert card.components == [] and card.embeds[0].fields[-1].name == "Closed"
        assert "the issue is now at dev-ready" in card.embeds[0].fields[-1].value
        assert status.embeds[0].fields[0].value == "dev-ready"
        assert len(world.channel(STATUS).messages) == 1 and len(status.edits) == 1
        details = [m.content for m in status.thread.messages]
        assert any("**plan-review → dev-ready**" in line for line in details)

        # It comes back with a new plan: a card for the new revision, the old one stays closed.
        await walk(runtime, issue.iid, "pm-ready", "pm-running")
        await feed.poll()
        newer = await post_plan(runtime, issue.iid, attempt=2, summary="Hi again.")
        await walk(runtime, issue.iid, "plan-review")
        await feed.poll()
        await surface.flush()
        cards = world.channel(APPROVALS).messages
        assert len(cards) == 2 and cards[1].custom_ids and card.components == []
        assert [e.fields[0].value for e in cards[1].embeds] == [f"plan note {newer.id}"]


async def test_the_engines_own_transition_is_not_shown_twice(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with fed(sim, tmp_path) as (runtime, world, surface, feed):
        issue = await new_issue(runtime)
        await walk(runtime, issue.iid, "pm-running")
        event = Event(
            EventKind.TRANSITION, PROJECT, issue.iid, issue.title, "claimed",
            "pm-ready", "pm-running", issue.web_url,
        )  # fmt: skip
        await surface.notify(event)  # this host's engine told it, with its details
        assert await feed.poll() == 0
        await surface.flush()
        [status] = world.channel(STATUS).messages
        assert len(status.thread.messages) == 1 and status.edits == []


async def test_what_was_queued_is_sent_after_a_restart(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (_, desk, runtime):
        world = FakeDiscord()
        issue, _ = await at_plan_review(runtime)
        gone = await new_issue(runtime, "Decided while we were down")
        _, gone_plan = await at_plan_review(runtime, gone)
        disconnected = asyncio.Event()
        surface = surface_for(desk, world, disconnected)
        feed = DiscordFeed(surface, poll_seconds=60)
        assert await feed.poll() == 2  # a status edit, details and a card each
        await asyncio.sleep(0.05)
        queued = surface.pending
        assert queued >= 6 and world.resolved == 0
        await surface.stop()  # the process dies with everything still queued

        await walk(runtime, gone.iid, "dev-ready")  # decided in GitLab meanwhile
        restarted = surface_for(desk, world)  # a new process over the same SQLite
        await asyncio.wait_for(restarted.flush(), 10)
        try:
            assert restarted.pending == 0
            titles = sorted(m.embeds[0].title for m in world.channel(STATUS).messages)
            assert [t.split(" ")[0] for t in titles] == ["demo/app#1", "demo/app#2"]
            [card] = world.channel(APPROVALS).messages  # none for the gate already decided
            assert card.embeds[0].title.startswith(f"Plan review: demo/app#{issue.iid}")
            assert str(gone_plan.id) not in str(card.embeds[0].fields[0].value)
            # The restarted host's feed sees only what moved since: the decided gate.
            assert await DiscordFeed(restarted, poll_seconds=60).poll() == 1
            await restarted.flush()
            assert len(world.channel(APPROVALS).messages) == 1
        finally:
            await restarted.stop()
