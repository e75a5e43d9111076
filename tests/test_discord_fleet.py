"""One fleet, one Discord (issue 13's first done-when): two `crewline worker` hosts, each its
own SQLite file and workspaces, do the work, and the `crewline run` host's Discord surface,
fed from GitLab, governs and shows it:

- the plan gate a worker reached gets its card on the run host, and the card's button
  decides it;
- `/pause` from Discord stops both workers claiming, `/resume` lets them claim again;
- a learning one worker recorded is in the other worker's next prompt, read through GitLab;
- the status channel follows the transitions both workers made.

Real engines, demo agents, real SQLite and the seeded simulator over HTTP; only Discord is
faked. Every pass (the workers' engines, the run host's feed) is driven explicitly: nothing
races a background poll, and waits are on conditions with a time limit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

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
from tests.support.desk import ALICE, BOB, PEOPLE, discord_settings
from tests.support.discord_desk import invoke, surface_for, user
from tests.support.discord_fakes import FakeDiscord, FakeMessage, click, submit
from tests.support.engine import PROJECT, configure, file_goal, reach, runtime_for, state_of
from tests.support.sim_issues import add_user

STATUS, APPROVALS = 700, 600
LEARNED = "demo/app runs its tests with python3 -m unittest discover."  # the demo agent's
LIMIT = 180.0  # seconds for a stage: generous, the machine running the tests may be loaded


@asynccontextmanager
async def worker(sim: RunningSim, base: Path, name: str) -> AsyncIterator[Runtime]:
    """A `crewline worker` host (planning and building); no desk of its own decides its
    gates, and it reads the fleet's state on every pass, as a short poll would."""
    async with runtime_for(sim, configure(sim, base / name, worker_id=name)) as (runtime, _):
        runtime.services.desk = EventLog()  # a worker has no surface: humans decide elsewhere
        runtime.services.fleet.max_age = 0
        yield runtime


class RunHost:
    """The `crewline run` host: its Discord client, surface and GitLab feed; it runs no role."""

    def __init__(self, runtime: Runtime, bot: CrewlineBot, world: FakeDiscord) -> None:
        self.runtime, self.bot, self.world = runtime, bot, world
        self.surface: DiscordSurface = surface_for(bot.desk, world)
        self.feed = DiscordFeed(self.surface, poll_seconds=3600)  # never started: see shown()

    async def shown(self) -> list[FakeMessage]:
        """One pass of the feed (what an issue webhook or the poll starts), then everything
        it queued sent to Discord; the approval cards."""
        await self.feed.poll()
        await self.surface.flush()
        return self.world.channel(APPROVALS).messages

    def status_thread(self, iid: int) -> tuple[FakeMessage, str]:
        """The status message of ``#iid`` and the lines of its thread."""
        ref = f"{PROJECT}#{iid} "
        [message] = [
            m for m in self.world.channel(STATUS).messages if m.thread and ref in m.thread.name
        ]
        assert message.thread is not None
        return message, "\n".join(line.content for line in message.thread.messages)


@asynccontextmanager
async def run_host(sim: RunningSim, base: Path) -> AsyncIterator[RunHost]:
    config = configure(sim, base / "run", worker_id="run-host")
    config = config.model_copy(update={"discord": discord_settings()})
    async with AsyncExitStack() as stack:
        runtime, _ = await stack.enter_async_context(runtime_for(sim, config))
        gateway = runtime.services.gateway
        desk = Desk(runtime, Identities(config.discord, gateway.member_access_level))
        bot = CrewlineBot(config.discord, desk)
        await bot.setup_hook()
        stack.push_async_callback(bot.close)
        host = RunHost(runtime, bot, FakeDiscord())
        stack.push_async_callback(host.surface.stop)
        yield host


def moves(thread: str) -> list[str]:
    """The headings of a status thread's lines: each move the channel was told of."""
    return re.findall(r"^`\d\d:\d\d` \*\*(.+?)\*\*", thread, re.MULTILINE)


async def discord_says(host: RunHost, command: str, who: int) -> str:
    return (await invoke(host.bot, command, user(who))).followup.text


@pytest.mark.timeout(3 * LIMIT + 60)  # three agent stages, each within LIMIT
async def test_two_workers_governed_and_shown_by_the_run_hosts_discord(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    project = int(demo_sim.call(_project_id(demo_sim)))  # type: ignore[call-overload]
    for name, level in PEOPLE.values():
        add_user(demo_sim, name, project, level)
    async with AsyncExitStack() as stack:
        planner = await stack.enter_async_context(worker(demo_sim, tmp_path, "w-a"))
        builder = await stack.enter_async_context(worker(demo_sim, tmp_path, "w-b"))
        run = await stack.enter_async_context(run_host(demo_sim, tmp_path))

        # Alice files a goal in Discord; worker A plans it.
        opened = await invoke(run.bot, "goal", user(ALICE))
        filed = await submit(
            opened.modal, opened, title=GOALS[0].title, description=GOALS[0].description,
            criteria="",
        )  # fmt: skip
        first = int(re.findall(rf"{PROJECT}#(\d+)", filed.followup.text)[0])
        assert await run.shown() == []  # the status channel shows it at pm-ready
        await reach(planner, {first: "plan-review"}, limit=LIMIT)
        [gate] = planner.services.desk.gates  # type: ignore[attr-defined]
        assert gate.filer == "alice"  # the person, not the bot that is GitLab's author

        # (a) The run host cards the gate worker A reached; the card's button decides it.
        [card] = await run.shown()
        fields = {field.name: field.value for field in card.embeds[0].fields}
        assert fields["Filed by"] == "@alice"
        approved = await click(run.bot, card, card.custom_ids[0], user(BOB))
        assert approved.followup.text == "Plan approved by @bob via Discord."
        assert await state_of(run.runtime, first) == "dev-ready" and card.components == []
        assert await run.shown() == [card]  # the feed sees the move; no second card

        # Worker B builds it and records what its agent learned (a note on the issue).
        await reach(builder, {first: "review-ready"}, limit=LIMIT)
        assert await builder.storage.learnings.search("unittest", project=PROJECT) != []
        assert await planner.storage.learnings.search("unittest", project=PROJECT) == []

        # (b) /pause in Discord: neither worker claims a goal at pm-ready.
        paused = await discord_says(run, "pause", BOB)
        assert paused == "every project paused: no host claims new work"
        second = (await file_goal(run.runtime, GOALS[1].title, GOALS[1].description)).iid
        assert await planner.engine.tick() == 0 and await builder.engine.tick() == 0
        assert planner.services.fleet.paused(PROJECT) and builder.services.fleet.paused(PROJECT)
        assert await state_of(planner, second) == "pm-ready"
        assert await run.shown() == [card]  # shown at pm-ready, where it stays

        # (c) Worker A's pass (paused, it claims nothing) indexed B's learnings from GitLab:
        # A ran no developer turn and shares no database with B.
        found = await planner.storage.learnings.search("unittest discover", project=PROJECT)
        assert [(item.iid, item.text) for item in found] == [(first, LEARNED)]
        assert await planner.storage.runs.find(PROJECT, first, "dev", 1) is None
        assert planner.storage.db.path != builder.storage.db.path

        # /resume in Discord: worker A claims the goal, and its plan prompt holds B's learning.
        assert await discord_says(run, "resume", BOB) == "every project resumed"
        assert await planner.engine.tick() == 1
        await reach(planner, {second: "plan-review"}, limit=LIMIT)
        prompts = sorted((tmp_path / "w-a" / "runs").glob(f"*/{second}/*/demo-session-*.txt"))
        assert len(prompts) == 1
        assert f"- (remember, #{first}) {LEARNED}" in prompts[0].read_text()

        # (d) The status channel shows the moves of both workers, one message per issue.
        cards = await run.shown()
        assert len(cards) == 2 and cards[0] is card  # no second card for the decided plan
        assert [field.name for field in card.embeds[0].fields][-1] == "Decision"
        assert cards[1].custom_ids  # the second plan waits for a decision
        status, lines = run.status_thread(first)
        assert status.embeds[0].fields[0].value == "review-ready"
        assert moves(lines) == [
            "waiting at pm-ready",  # filed in Discord
            "pm-ready → plan-review",  # worker A's move
            "waiting at plan-review",  # its card, with the plan
            "plan-review → dev-ready",  # Bob's decision on the card
            "dev-ready → review-ready",  # worker B's move
        ]
        status, lines = run.status_thread(second)
        assert status.embeds[0].fields[0].value == "plan-review"
        assert moves(lines) == [
            "waiting at pm-ready",  # filed in GitLab while paused
            "pm-ready → plan-review",  # worker A's move, after the resume
            "waiting at plan-review",
        ]
        assert len(run.world.channel(STATUS).messages) == 2

        # Who did what: A planned both goals, B built the first; the run host ran nothing.
        assert await planner.storage.runs.find(PROJECT, first, "pm", 1) is not None
        assert await planner.storage.runs.find(PROJECT, second, "pm", 1) is not None
        assert await builder.storage.runs.find(PROJECT, first, "dev", 1) is not None
        assert await builder.storage.runs.find(PROJECT, second, "pm", 1) is None
        assert await run.runtime.storage.runs.active() == []
        assert run.runtime.engine.stats.started == 0


async def _project_id(sim: RunningSim) -> int:
    assert sim.sim is not None
    row = await project_by_ref(sim.sim, PROJECT)
    assert row is not None
    return int(row["id"])
