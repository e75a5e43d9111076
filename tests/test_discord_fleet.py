"""One fleet, one Discord: two `crewline worker` hosts (each its own SQLite and workspaces)
do the work, and the `crewline run` host's Discord surface, fed from GitLab, shows it: the
plan gate a worker reached gets its card on the run host, the card's button decides it, and
the status channel follows the transitions both workers made. Real engines, demo agents and
the seeded simulator; only Discord is faked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from bot.app import Runtime
from bot.demo_goals import GOALS
from bot.desk import Desk
from bot.discord.client import CrewlineBot
from bot.discord.feed import DiscordFeed
from bot.discord.notify import DiscordSurface
from bot.identity import Identities
from roles.notify import EventLog
from sim.core.app import RunningSim
from sim.core.base import project_by_ref
from tests.support.desk import BOB, PEOPLE, discord_settings
from tests.support.discord_desk import surface_for, user
from tests.support.discord_fakes import FakeDiscord, click
from tests.support.engine import PROJECT, configure, file_goal, reach, runtime_for, state_of
from tests.support.sim_issues import add_user

STATUS, APPROVALS = 700, 600


@asynccontextmanager
async def worker(sim: RunningSim, base: Path, name: str, *roles: str) -> AsyncIterator[Runtime]:
    """A `crewline worker` host running only ``roles``; no desk decides its gates."""
    config = configure(sim, base / name, worker_id=name)
    for role in ("pm", "dev"):
        getattr(config.roles, role).enabled = role in roles
    async with runtime_for(sim, config) as (runtime, _):
        runtime.services.desk = EventLog()  # a worker has no surface: humans decide elsewhere
        yield runtime


async def test_the_run_hosts_discord_shows_the_gates_and_transitions_of_two_workers(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    project = int(demo_sim.call(_project_id(demo_sim)))  # type: ignore[call-overload]
    for name, level in PEOPLE.values():
        add_user(demo_sim, name, project, level)
    world = FakeDiscord()
    async with AsyncExitStack() as stack:
        planner = await stack.enter_async_context(worker(demo_sim, tmp_path, "w-plan", "pm"))
        builder = await stack.enter_async_context(worker(demo_sim, tmp_path, "w-build", "dev"))
        run_config = configure(demo_sim, tmp_path / "run", worker_id="run-host")
        run_config = run_config.model_copy(update={"discord": discord_settings()})
        run_host, _ = await stack.enter_async_context(runtime_for(demo_sim, run_config))
        desk = Desk(
            run_host, Identities(run_config.discord, run_host.services.gateway.member_access_level)
        )
        bot = CrewlineBot(run_config.discord, desk)
        await bot.setup_hook()
        stack.push_async_callback(bot.close)
        surface: DiscordSurface = surface_for(desk, world)
        stack.push_async_callback(surface.stop)
        feed = DiscordFeed(surface, poll_seconds=0.1)  # the poll stands in for issue webhooks
        feed.start()
        stack.push_async_callback(feed.stop)

        issue = await file_goal(planner, GOALS[0].title, GOALS[0].description)
        await reach(planner, {issue.iid: "plan-review"})
        await feed.poll()
        await surface.flush()
        [card] = world.channel(APPROVALS).messages  # the planner's gate, carded by the run host
        approved = await click(bot, card, card.custom_ids[0], user(BOB))
        assert approved.followup.text == "Plan approved by @bob via Discord."
        assert await state_of(run_host, issue.iid) == "dev-ready" and card.components == []

        await reach(builder, {issue.iid: "review-ready"})
        await feed.poll()
        await surface.flush()
        [status] = world.channel(STATUS).messages  # one message per issue, edited in place
        assert status.embeds[0].fields[0].value == "review-ready"
        assert status.thread is not None
        lines = "\n".join(message.content for message in status.thread.messages)
        assert "→ plan-review**" in lines  # the planner's move
        assert "→ review-ready**" in lines  # the builder's move
        assert len(world.channel(APPROVALS).messages) == 1  # no second card for the plan
        # Decided on the card itself: the feed seeing the gate left does not edit it again.
        assert [field.name for field in card.embeds[0].fields][-1] == "Decision"
        # The work was done by the workers alone: the run host ran nothing.
        assert await run_host.storage.runs.active() == []
        assert run_host.engine.stats.started == 0
        assert planner.engine.stats.started >= 1 and builder.engine.stats.started >= 1


async def _project_id(sim: RunningSim) -> int:
    assert sim.sim is not None
    row = await project_by_ref(sim.sim, PROJECT)
    assert row is not None
    return int(row["id"])
