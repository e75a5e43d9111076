"""The flaky board where humans look (decision 0039): the Discord digest shows the same
board as `crewline status` (stages, causes, p before and after, CI runs and minutes), and a
weekly note on the control issue lists the worst offenders, once per ISO week whatever the
hosts and restarts, edited in place as the week goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.desk import Desk
from bot.discord.digest import build_digest, digest_embed
from bot.identity import Identities
from bot.status import flaky_text
from forge.control import CONTROL_LABEL
from roles.flaky.board import flaky_board
from roles.flaky.filing import rerun_of
from roles.flaky.proof import Proofs
from roles.flaky.weekly import post_weekly, weekly_key
from sim.core.app import RunningSim
from tests.support.desk import discord_settings
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.flaky import hosts, push_scripted, run_again
from tests.test_flaky_proof import detected, runs_of
from workflow import flaky_workflow

WEEK_49 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # ISO week 2026-W49


def control_issues(sim: RunningSim) -> list[int]:
    project = root(sim).projects.get(PROJECT)
    return [i.iid for i in project.issues.list(labels=CONTROL_LABEL, state="all", get_all=True)]


async def test_digest_and_weekly_note_show_the_flaky_board(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,3")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path) as (one, other):
        issue = await detected(demo_sim, one)
        rerun = rerun_of(issue)
        assert rerun is not None
        await Proofs(one.services.gateway, flaky_workflow()).reproduce(
            issue, runs_of(one, rerun), 2
        )  # runs 3 (red) and 4: p = 0.5
        board = await flaky_board(one.services.gateway, [PROJECT], flaky_workflow(), "flaky-test")
        (row,) = board.rows
        assert (row.stage, row.p_before, row.ci_runs) == ("reproduced", 0.5, 2)
        assert board.ci_minutes > 0  # the jobs' durations, as listed in the reproducer's note

        # The digest carries the board `crewline status` prints, line for line.
        desk = Desk(one, Identities(discord_settings(), one.services.gateway.member_access_level))
        digest = await build_digest(desk, datetime.now(UTC) - timedelta(hours=1))
        assert digest.flaky is not None and digest.flaky.rows == board.rows
        (field,) = [f for f in digest_embed(digest).fields if f.name == "Flaky tests (1)"]
        assert field.value is not None
        assert "reproduced 1" in field.value and "2 CI runs" in field.value
        assert f"#{issue.iid}" in field.value and "p 0.50 -> ?, 2 runs" in field.value
        assert "CI minutes spent" in flaky_text(board)

        # Two hosts, a restart, a second pass: one control issue, one note for the week.
        first = await post_weekly(one.services.gateway, PROJECT, board, now=WEEK_49)
        again = await post_weekly(other.services.gateway, PROJECT, board, now=WEEK_49)
        assert first == again and control_issues(demo_sim) == [first]
        assert first is not None
        week = [b for b in note_bodies(demo_sim, first) if weekly_key("2026-W49") in b]
        assert len(week) == 1
        assert "Flaky tests, week 2026-W49" in week[0] and "Worst offenders" in week[0]
        assert f"{PROJECT}#{issue.iid}" in week[0] and "p 0.50" in week[0]

        # Later that week the test was diagnosed: the same note now says so.
        await one.services.gateway.update_issue(
            PROJECT, issue.iid, add_labels=["flaky-test::unseeded-randomness"]
        )
        board = await flaky_board(one.services.gateway, [PROJECT], flaky_workflow(), "flaky-test")
        await post_weekly(other.services.gateway, PROJECT, board, now=WEEK_49 + timedelta(days=2))
        week = [b for b in note_bodies(demo_sim, first) if weekly_key("2026-W49") in b]
        assert len(week) == 1 and "unseeded-randomness 1" in week[0]

        # The next ISO week gets a note of its own.
        await post_weekly(one.services.gateway, PROJECT, board, now=WEEK_49 + timedelta(days=7))
    bodies = note_bodies(demo_sim, first)
    assert [weekly_key("2026-W50") in b for b in bodies].count(True) == 1


async def test_no_flaky_test_no_control_issue_for_the_weekly_note(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        board = await flaky_board(host.services.gateway, [PROJECT], flaky_workflow(), "flaky-test")
        assert await post_weekly(host.services.gateway, PROJECT, board, now=WEEK_49) is None
    assert control_issues(demo_sim) == []
