"""Spend caps: per issue, per project per day, and for the whole fleet per day (UTC).

Figures come from what agents report (tokens, USD); an agent that reports tokens but no
dollars is priced from ``roles.budgets.prices``. Daily caps compare the fleet's sum: this
host's records plus what every other host publishes on the control issues
(``roles/fleet_state.py``). An issue cap counts this host's runs of the issue.

A cap stops new agent turns only, of the roles in :data:`BUDGETED_ROLES` (never QA, never a
merge): work waits at its ready state, the issue gets one notice per day, and it goes on by
itself once the day rolls over or the cap is raised. A turn is given at most the time the
budget left buys (``usd_per_hour`` / ``tokens_per_minute``), so one turn cannot blow through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from forge.types import Issue
from roles.agents.base import Usage
from roles.context import Services
from roles.notify import Event, EventKind
from roles.settings import BudgetSettings

log = logging.getLogger(__name__)

BUDGETED_ROLES = frozenset({"pm", "dev", "review"})  # the roles whose turns cost money
HOLD_KEY = "budget-hold"  # the notice's note key: budget-hold:<day>
MIN_TURN_SECONDS = 10.0


class BudgetHeld(Exception):
    """A cap was reached before an agent turn: the run stops, the issue waits at ready."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class BudgetLeft:
    reason: str | None  # why new turns must wait; None while under every cap
    usd: float | None = None  # the least left under any dollar cap; None: no dollar cap
    tokens: int | None = None  # the least left under any token cap; None: no token cap


def _least(current: float | None, left: float) -> float:
    return left if current is None else min(current, left)


async def budget_left(services: Services, project: str, iid: int) -> BudgetLeft:
    """What is left under every cap, and the first cap reached (with its figures)."""
    budgets, runs, fleet = services.roles.budgets, services.storage.runs, services.fleet
    usd: float | None = None
    tokens: float | None = None
    issue = await runs.spend(project=project, iid=iid)
    if budgets.issue_usd is not None:
        if issue.cost_usd >= budgets.issue_usd:
            return BudgetLeft(
                f"issue budget reached: ${issue.cost_usd:.2f} spent of ${budgets.issue_usd:.2f}"
            )
        usd = _least(usd, budgets.issue_usd - issue.cost_usd)
    if budgets.issue_tokens is not None:
        if issue.tokens >= budgets.issue_tokens:
            return BudgetLeft(
                f"issue budget reached: {issue.tokens:,} tokens of {budgets.issue_tokens:,}"
            )
        tokens = _least(tokens, budgets.issue_tokens - issue.tokens)
    today = fleet.day_start()
    if budgets.project_day_usd is not None:
        mine = await runs.spend(project=project, since=today)
        day = mine.cost_usd + fleet.others_spend(project).cost_usd
        if day >= budgets.project_day_usd:
            return BudgetLeft(
                f"daily budget of {project} reached: ${day:.2f} spent today by the fleet "
                f"of ${budgets.project_day_usd:.2f}"
            )
        usd = _least(usd, budgets.project_day_usd - day)
    if budgets.fleet_day_usd is not None or budgets.fleet_day_tokens is not None:
        mine = await runs.spend(since=today)
        others = fleet.others_spend()
        day_usd, day_tokens = mine.cost_usd + others.cost_usd, mine.tokens + others.tokens
        if budgets.fleet_day_usd is not None:
            if day_usd >= budgets.fleet_day_usd:
                return BudgetLeft(
                    f"fleet daily budget reached: ${day_usd:.2f} spent today "
                    f"of ${budgets.fleet_day_usd:.2f}"
                )
            usd = _least(usd, budgets.fleet_day_usd - day_usd)
        if budgets.fleet_day_tokens is not None:
            if day_tokens >= budgets.fleet_day_tokens:
                return BudgetLeft(
                    f"fleet daily budget reached: {day_tokens:,} tokens today "
                    f"of {budgets.fleet_day_tokens:,}"
                )
            tokens = _least(tokens, budgets.fleet_day_tokens - day_tokens)
    return BudgetLeft(None, usd, None if tokens is None else int(tokens))


async def over_budget(services: Services, project: str, iid: int) -> str | None:
    """Why new agent turns on the issue must wait, with the figures; None while under."""
    return (await budget_left(services, project, iid)).reason


def turn_timeout(budgets: BudgetSettings, left: BudgetLeft, configured: float) -> float:
    """The agent's timeout cut to what the budget left buys at the configured rates."""
    limit = configured
    if left.usd is not None and budgets.usd_per_hour is not None:
        limit = min(limit, left.usd / budgets.usd_per_hour * 3600)
    if left.tokens is not None and budgets.tokens_per_minute is not None:
        limit = min(limit, left.tokens / budgets.tokens_per_minute * 60)
    return max(MIN_TURN_SECONDS, limit) if limit < configured else configured


def priced(budgets: BudgetSettings, usage: Usage, *names: str | None) -> float:
    """The turn's cost: as the agent reported it, else its tokens at the price of the
    first of ``names`` (the model, then the agent) found in ``roles.budgets.prices``."""
    if usage.cost_usd > 0 or not (usage.tokens_in or usage.tokens_out):
        return usage.cost_usd
    for name in names:
        price = budgets.prices.get(name) if name else None
        if price is not None:
            return (
                usage.tokens_in * price.input_usd_per_mtok
                + usage.tokens_out * price.output_usd_per_mtok
            ) / 1_000_000
    return usage.cost_usd


async def hold_notice(services: Services, issue: Issue, reason: str) -> None:
    """Say once per day on the issue why it waits (a keyed note: one copy across hosts and
    restarts), and tell the humans when this host posted it."""
    day = services.fleet.day().isoformat()
    key = (issue.project, issue.iid, day)
    if key in services.fleet.noticed:
        return
    found = await services.gateway.find_note(issue.project, issue.iid, f"{HOLD_KEY}:{day}")
    if found is None:
        await services.gateway.upsert_note(
            issue.project,
            issue.iid,
            f"{HOLD_KEY}:{day}",
            f"crewline is holding this issue where it is: {reason}. It goes on by itself "
            "when the day (UTC) rolls over or the cap is raised.",
        )
        await services.notifier.notify(
            Event(EventKind.BUDGET, issue.project, issue.iid, issue.title, reason)
        )
        log.info("budget hold: issue=%s: %s", issue.ref, reason)
    services.fleet.noticed.add(key)
