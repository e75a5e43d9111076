"""End to end through Discord: a goal filed with /goal, the real engine and a PM agent that
asks first (a subprocess), the question answered with its button in the issue's thread, the
plan approved on its card; against the seeded simulator and real SQLite."""

from __future__ import annotations

from pathlib import Path

from bot.demo_goals import GOALS
from bot.desk import Desk
from bot.discord.client import CrewlineBot
from bot.identity import Identities
from roles.notify import Fanout
from roles.settings import AgentSettings
from sim.core.app import RunningSim
from sim.core.base import project_by_ref
from tests.support.desk import ALICE, BOB, PEOPLE, discord_settings
from tests.support.discord_desk import invoke, surface_for, user
from tests.support.discord_fakes import FakeDiscord, click, submit
from tests.support.engine import PROJECT, configure, fake_agent, reach, runtime_for, state_of
from tests.support.sim_issues import add_user


async def test_goal_question_answer_and_plan_approval_through_discord(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    project = int(demo_sim.call(_project_id(demo_sim)))  # type: ignore[call-overload]
    for name, level in PEOPLE.values():
        add_user(demo_sim, name, project, level)
    config = configure(
        demo_sim,
        tmp_path,
        discord=discord_settings(),
        agents={
            "demo": AgentSettings(kind="demo", timeout_seconds=60),
            "asker": fake_agent("asks_first"),
        },
    )
    config.roles.pm.agent = "asker"
    world = FakeDiscord()
    async with runtime_for(demo_sim, config) as (runtime, log):
        desk = Desk(
            runtime, Identities(config.discord, runtime.services.gateway.member_access_level)
        )
        bot = CrewlineBot(config.discord, desk)
        await bot.setup_hook()
        surface = surface_for(desk, world)
        runtime.services.notifier = Fanout(log, surface)
        runtime.services.desk = surface
        try:
            opened = await invoke(bot, "goal", user(ALICE))
            filed = await submit(
                opened.modal,
                opened,
                title=GOALS[0].title,
                description=GOALS[0].description,
                criteria="",
            )
            assert filed.followup.text.startswith("filed demo/app#1 at pm-ready")
            await reach(runtime, {1: "needs-input"})
            await surface.flush()
            [status] = world.channel(700).messages
            asked = [m for m in status.thread.messages if m.custom_ids]
            assert len(asked) == 1 and "Should acronyms stay upper case?" in asked[0].content
            answering = await click(bot, asked[0], asked[0].custom_ids[0], user(BOB))
            answered = await submit(answering.modal, answering, answer="Yes, keep them.")
            assert answered.followup.text == "answer posted on demo/app#1; resumed at pm-ready"
            await reach(runtime, {1: "plan-review"})
            await surface.flush()
            [card] = world.channel(600).messages
            approved = await click(bot, card, card.custom_ids[0], user(BOB))
            assert approved.followup.text == "Plan approved by @bob via Discord."
            assert await state_of(runtime, 1) == "dev-ready" and card.components == []
            assert status.embeds[0].fields[0].value == "plan-review"  # the engine's last word
            details = "\n".join(message.content for message in status.thread.messages)
            assert "**pm-running → needs-input**" in details and "waiting at plan-review" in details
        finally:
            await surface.stop()
            await bot.close()
    moves = [event.to_state for event in log.events if event.iid == 1]
    assert moves.index("needs-input") < moves.index("plan-review")


async def _project_id(sim: RunningSim) -> int:
    assert sim.sim is not None
    row = await project_by_ref(sim.sim, PROJECT)
    assert row is not None
    return int(row["id"])
