"""A daily cap reached mid-run: QA and merges go on, new developer turns wait at dev-ready
with one notice, and the work resumes the next day without a human (roles/budget.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from bot.status import board
from forge.control import spend_note_key
from roles.agents.base import Usage
from roles.budget import BudgetLeft, priced, turn_timeout
from roles.notify import EventKind
from roles.settings import BudgetSettings, ModelPrice
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    fake_agent,
    file_block,
    file_goal,
    note_bodies,
    reach,
    runtime_for,
)
from tests.support.review_merge import full_config, goal_text, greet_goal, merging_runtime

WAVE = 'def wave(name: str) -> str:\n    return f"Bye, {name}!"\n'
WAVE_WRONG = 'def wave(name: str) -> str:\n    return "bye"\n'
WAVE_TEST = """import unittest

from app.wave import wave


class WaveTest(unittest.TestCase):
    def test_waves_by_name(self) -> None:
        self.assertEqual(wave("Ada"), "Bye, Ada!")
"""


def wave_goal() -> str:
    """Its first implementation fails validation: the developer needs a second (fix) turn."""
    return goal_text(
        "A farewell helper.",
        "Check: python3 -m unittest tests.test_wave",
        file_block("app/wave.py", WAVE),
        file_block("app/wave.py", WAVE_WRONG, first_attempt=True),
        file_block("tests/test_wave.py", WAVE_TEST),
    )


async def test_a_daily_cap_reached_mid_run_holds_dev_turns_and_lets_qa_and_merges_run(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("costly")})
    config.roles.qa.enabled = False  # the first goal waits at qa-ready until the cap is hit
    async with merging_runtime(demo_sim, config) as (runtime, _, log):
        roles = runtime.services.roles
        first = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {first.iid: "qa-ready"}, limit=120)
        roles.dev.enabled = False  # until the cap is set
        second = await file_goal(runtime, "Add wave", wave_goal())
        await reach(runtime, {second.iid: "dev-ready"})
        spent = (await runtime.storage.runs.spend()).cost_usd
        assert spent == pytest.approx(10.0)  # four turns: two plans, one change, one review
        # The developer of the second goal starts under the cap; its first turn reaches it.
        roles.budgets.fleet_day_usd = spent + 1.0
        roles.dev.enabled = roles.qa.enabled = True
        await reach(runtime, {first.iid: "done", second.iid: "dev-ready"}, limit=120)
        waiting = runtime.engine.waiting[(PROJECT, second.iid)]
        assert waiting.reason == "budget: fleet daily budget reached: $12.50 spent today of $11.00"
        held_spend = await runtime.storage.runs.spend(project=PROJECT, iid=second.iid)
        assert held_spend.cost_usd == pytest.approx(5.0)  # its plan and one turn, no fix turn
        for _ in range(3):  # pass after pass: still held, and told only once
            assert await runtime.engine.tick() == 0
        notices = [b for b in note_bodies(demo_sim, second.iid) if "holding this issue" in b]
        assert len(notices) == 1 and "fleet daily budget reached" in notices[0]
        budget_events = [e for e in log.events if e.kind is EventKind.BUDGET]
        assert [e.iid for e in budget_events] == [second.iid]
        assert not any(e.kind is EventKind.BLOCKED for e in log.events)

        tomorrow = datetime.now(UTC) + timedelta(days=1)
        runtime.services.fleet.now = lambda: tomorrow  # the period rolls over
        await reach(runtime, {second.iid: "done"}, limit=120)
    notices = [b for b in note_bodies(demo_sim, second.iid) if "holding this issue" in b]
    assert len(notices) == 1


async def test_turns_reporting_only_tokens_are_priced_and_count_against_a_cap(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    agent = fake_agent("tokens_only", model="m-small")
    config = configure(demo_sim, tmp_path, agents={"demo": agent})
    config.roles.budgets = BudgetSettings(
        fleet_day_usd=0.5,
        prices={"m-small": ModelPrice(input_usd_per_mtok=1.0, output_usd_per_mtok=4.0)},
    )
    config.roles.dev.enabled = False  # until the plan is there
    async with runtime_for(demo_sim, config) as (runtime, _):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "dev-ready"})  # one plan turn: 0.2 + 0.2 dollars
        runtime.services.roles.dev.enabled = True
        assert await runtime.engine.tick() == 1  # $0.40 of $0.50: the developer starts
        await runtime.engine.drain()
        spent = await runtime.storage.runs.spend()
        assert spent.tokens == 2 * 250_000 and spent.cost_usd == pytest.approx(0.8)
        later = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
        assert await runtime.engine.tick() == 0
        assert runtime.engine.waiting[(PROJECT, later.iid)].reason == (
            "budget: fleet daily budget reached: $0.80 spent today of $0.50"
        )


async def test_a_turn_is_cut_to_the_time_the_budget_left_buys(
    demo_sim: RunningSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("hangs_on_implement")})
    # $1 left at $360 an hour buys 10 seconds; the agent's own timeout is 60.
    config.roles.budgets = BudgetSettings(fleet_day_usd=1.0, usd_per_hour=360.0)
    config.roles.dev.enabled = False  # until the plan is there
    async with runtime_for(demo_sim, config) as (runtime, _):
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "dev-ready"})
        runtime.services.roles.dev.enabled = True
        started = time.monotonic()
        assert await runtime.engine.tick() == 1
        await runtime.engine.drain()  # the implement turn is killed when its time is up
        took = time.monotonic() - started
    assert 9 < took < 50, took
    assert "timed out after 10 s" in caplog.text  # $1 at $360 an hour, not the agent's 60 s


def test_tokens_without_dollars_are_priced_from_the_table() -> None:
    budgets = BudgetSettings(
        prices={"gpt-x": ModelPrice(input_usd_per_mtok=2.0, output_usd_per_mtok=8.0)}
    )
    tokens = Usage(tokens_in=1_000_000, tokens_out=500_000)
    assert priced(budgets, tokens, "gpt-x", "codex") == pytest.approx(6.0)
    assert priced(budgets, tokens, None, "gpt-x") == pytest.approx(6.0)  # by agent name
    assert priced(budgets, tokens, "unknown", "codex") == 0.0  # no price: as reported
    reported = Usage(tokens_in=10, tokens_out=10, cost_usd=0.5)
    assert priced(budgets, reported, "gpt-x") == 0.5  # dollars reported win


def test_a_turn_is_given_at_most_the_time_the_budget_left_buys() -> None:
    budgets = BudgetSettings(fleet_day_usd=10.0, usd_per_hour=6.0, tokens_per_minute=1000)
    assert turn_timeout(budgets, BudgetLeft(None, usd=1.0), 1800.0) == pytest.approx(600.0)
    assert turn_timeout(budgets, BudgetLeft(None, tokens=5000), 1800.0) == pytest.approx(300.0)
    assert turn_timeout(budgets, BudgetLeft(None, usd=100.0), 1800.0) == 1800.0
    assert turn_timeout(budgets, BudgetLeft(None, usd=0.001), 1800.0) == 10.0  # a floor
    assert turn_timeout(BudgetSettings(), BudgetLeft(None, usd=0.5), 900.0) == 900.0


async def test_status_shows_a_budget_hold_and_writes_nothing(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path, agents={"demo": fake_agent("costly")})
    config.roles.dev.enabled = False  # until the plan is there
    async with runtime_for(demo_sim, config) as (runtime, log):
        fleet = runtime.services.fleet
        await fleet.ensure()  # the control issue, with nothing spent yet
        control = fleet.views[PROJECT].iid
        assert control is not None
        issue = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {issue.iid: "dev-ready"})  # one plan turn: $2.50
        runtime.services.roles.budgets.fleet_day_usd = 1.0
        runtime.services.roles.dev.enabled = True
        notes_before = note_bodies(demo_sim, issue.iid)
        control_before = note_bodies(demo_sim, control)
        shown = await board(runtime)  # what `crewline status` does
        item = next(item for item in shown.items if item.iid == issue.iid)
        assert item.detail == "wait: budget: fleet daily budget reached: $2.50 spent today of $1.00"
        assert note_bodies(demo_sim, issue.iid) == notes_before  # no hold notice
        assert note_bodies(demo_sim, control) == control_before  # no spend published
        assert not any(e.kind is EventKind.BUDGET for e in log.events)
        fleet.max_age = 0  # the engine's poll reads and publishes on this pass
        assert await runtime.engine.tick() == 0  # the engine acts on the answer: it tells
        notices = [b for b in note_bodies(demo_sim, issue.iid) if "holding this issue" in b]
        assert len(notices) == 1
        assert [e.iid for e in log.events if e.kind is EventKind.BUDGET] == [issue.iid]
        spend_key = spend_note_key(runtime.services.worker, fleet.day().isoformat())
        assert any(spend_key in body for body in note_bodies(demo_sim, control))
