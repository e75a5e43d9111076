"""Every slash command invoked with a fake Interaction against the real desk, GitLab (the
simulator) and SQLite: each defers before any slow work, checks the caller itself, and has
exactly the effect it claims."""

from __future__ import annotations

from pathlib import Path

from bot.discord.cogs.goals import GoalModal
from bot.discord.interact import FAILED
from roles.engine.loop import pause_key
from sim.core.app import RunningSim
from tests.support.desk import ALICE, BOB, NOBODY, RITA, audit_of, new_issue, walk
from tests.support.discord_desk import bot_for, invoke, user
from tests.support.discord_fakes import click, submit
from tests.support.engine import PROJECT, root, state_of

DEFERRED = ("defer", {"ephemeral": True, "thinking": True})


async def test_goal_opens_a_modal_and_files_the_issue(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        opened = await invoke(bot, "goal", user(ALICE))
        modal = opened.modal
        assert isinstance(modal, GoalModal) and modal.project == PROJECT
        submitted = await submit(
            modal,
            opened,
            title="Greet **loudly** @everyone",
            description="Print hello.",
            criteria="- exits 0",
        )
        assert submitted.response.calls == [DEFERRED]
        answer = submitted.followup.text
        assert answer.startswith(
            "filed demo/app#1 at pm-ready: Greet \\*\\*loudly\\*\\* @\u200beveryone"
        )
        assert "[Open it in GitLab](http" in answer and answer.endswith("/demo/app/-/issues/1)")
        # The same modal submission again (Discord retried it): still one issue.
        again = await submit(
            modal, opened, delivery=submitted.retried(), title="Greet", description="", criteria=""
        )
        assert again.followup.text.startswith("already filed as demo/app#1")
        issues = root(sim).projects.get(PROJECT).issues.list(get_all=True)
        assert [issue.title for issue in issues] == ["Greet **loudly** @everyone"]
        assert "Filed by @alice via Discord." in issues[0].description
        assert await state_of(runtime, 1) == "pm-ready"


async def test_goal_refuses_an_unmapped_user_at_once(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, _):
        refused = await invoke(bot, "goal", user(NOBODY))
        assert "is not mapped to a GitLab user" in refused.refused
        bad = await invoke(bot, "goal", user(ALICE), project="other/app")
        assert "'other/app' is not a configured project" in bad.refused
        reporter = await invoke(bot, "goal", user(RITA))
        submitted = await submit(reporter.modal, reporter, title="T", description="", criteria="")
        assert "@rita has Reporter access to demo/app" in submitted.refused
    assert root(sim).projects.get(PROJECT).issues.list(get_all=True) == []


async def test_status_shows_the_board(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        await new_issue(runtime, "Hello <@123> `code`")
        shown = await invoke(bot, "status", user(RITA))
        assert shown.response.calls == [DEFERRED]
        embed = shown.followup.sent[0]["embed"]
        assert embed.fields[0].value == "pm-ready **1**"
        assert "`demo/app#1` pm-ready: Hello <\u200b@123> \\`code\\`" in embed.description
        one = await invoke(bot, "status", user(RITA), project=PROJECT)
        assert one.followup.sent[0]["embed"].title == "Board: demo/app"
        stranger = await invoke(bot, "status", user(NOBODY))
        assert "not mapped to a GitLab user" in stranger.refused


async def test_stuck_lists_items_with_buttons_that_work(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue = await new_issue(runtime, "Stopped")
        await walk(runtime, issue.iid, "pm-running", "blocked")
        shown = await invoke(bot, "stuck", user(RITA))
        sent = shown.followup.sent[0]
        assert sent["embed"].description.endswith(
            "blocked: Stopped (blocked: stopped; needs a human to unblock it): read the last note, "
            "fix the cause, then retry (re-queue) the issue"
        )
        [custom_id] = shown.followup.message.custom_ids
        assert sent["view"].children[0].item.label == "Retry #1"
        assert custom_id.endswith(":1:retry") and await state_of(runtime, 1) == "blocked"
        refused = await click(bot, shown.followup.message, custom_id, user(RITA))
        assert "Reporter access" in refused.refused and await state_of(runtime, 1) == "blocked"
        clicked = await click(bot, shown.followup.message, custom_id, user(BOB))
        assert clicked.followup.text == "demo/app#1 re-queued from blocked to pm-ready"
        assert await state_of(runtime, 1) == "pm-ready"
        twice = await click(bot, shown.followup.message, custom_id, user(ALICE))
        assert "only a blocked or failed issue can be retried (by @bob at" in twice.refused


async def test_retry_pause_resume(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue = await new_issue(runtime)
        await walk(runtime, issue.iid, "pm-running", "failed")
        denied = await invoke(bot, "retry", user(ALICE, approver=False), issue="#1")
        assert "none of the approver roles" in denied.refused
        assert await state_of(runtime, 1) == "failed"
        done = await invoke(bot, "retry", user(BOB), issue="demo/app#1")
        assert done.response.calls == [DEFERRED]
        assert done.followup.text == "demo/app#1 re-queued from failed to pm-ready"
        assert await state_of(runtime, 1) == "pm-ready"
        unknown = await invoke(bot, "retry", user(BOB), issue="the red one")
        assert "names no issue" in unknown.refused

        fleet = runtime.services.fleet
        paused = await invoke(bot, "pause", user(BOB), project=PROJECT)
        assert paused.followup.text == "demo/app paused: no host claims new work"
        assert fleet.paused(PROJECT) and not fleet.paused_everywhere(PROJECT)
        await invoke(bot, "pause", user(BOB))
        assert fleet.paused_everywhere(PROJECT)
        resumed = await invoke(bot, "resume", user(ALICE))
        assert resumed.followup.text == "every project resumed"
        assert not fleet.paused_everywhere(PROJECT) and fleet.paused(PROJECT)
        refused = await invoke(bot, "resume", user(RITA), project=PROJECT)
        assert "Reporter access" in refused.refused
        await fleet.refresh()  # what GitLab says, not only this host's view of it
        assert fleet.paused(PROJECT)
        assert ("discord:1003 gitlab:rita", "desk.resume", "denied") in await audit_of(
            runtime, pause_key(PROJECT)
        )


async def test_audit_and_learnings(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        filed = await invoke(bot, "goal", user(ALICE))
        await submit(filed.modal, filed, title="Greet", description="", criteria="")  # as #1
        trail = await invoke(bot, "audit", user(RITA), issue="#1")
        embed = trail.followup.sent[0]["embed"]
        assert embed.title == "Audit trail of demo/app#1"
        assert "discord:1001 gitlab:alice desk.goal **ok**" in embed.description
        await runtime.storage.learnings.add(PROJECT, 1, "failure", "flaky *network* test")
        found = await invoke(bot, "learnings", user(RITA), query="network")
        assert "*failure*: flaky \\*network\\* test" in found.followup.sent[0]["embed"].description
        empty = await invoke(bot, "learnings", user(RITA), query="   ")
        assert "say what to look for" in empty.refused


async def test_an_unexpected_failure_is_answered_without_details(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (bot, desk, _):

        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("database exploded: secret path /var/x")

        desk.stuck = broken  # type: ignore[method-assign]
        shown = await invoke(bot, "stuck", user(RITA))
        assert shown.followup.text == FAILED
