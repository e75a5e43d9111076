"""Spend caps: per issue, per project per day, and for every project of this host per day.

Figures come from what agents report (tokens, USD) and are summed in SQLite; an agent
that reports nothing costs nothing here, which the README says plainly.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from roles.settings import BudgetSettings
from storage import RunStore


def _today() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)


async def over_budget(
    runs: RunStore, budgets: BudgetSettings, project: str, iid: int
) -> str | None:
    """Why new work on the issue must stop, with the figures; None while under every cap."""
    issue = await runs.spend(project=project, iid=iid)
    if budgets.issue_usd is not None and issue.cost_usd >= budgets.issue_usd:
        return f"issue budget reached: ${issue.cost_usd:.2f} spent of ${budgets.issue_usd:.2f}"
    if budgets.issue_tokens is not None and issue.tokens >= budgets.issue_tokens:
        return f"issue budget reached: {issue.tokens:,} tokens of {budgets.issue_tokens:,}"
    today = _today()
    if budgets.project_day_usd is not None:
        day = await runs.spend(project=project, since=today)
        if day.cost_usd >= budgets.project_day_usd:
            return (
                f"daily budget of {project} reached: ${day.cost_usd:.2f} spent today "
                f"of ${budgets.project_day_usd:.2f}"
            )
    if budgets.fleet_day_usd is not None or budgets.fleet_day_tokens is not None:
        fleet = await runs.spend(since=today)
        if budgets.fleet_day_usd is not None and fleet.cost_usd >= budgets.fleet_day_usd:
            return (
                f"fleet daily budget reached: ${fleet.cost_usd:.2f} spent today "
                f"of ${budgets.fleet_day_usd:.2f}"
            )
        if budgets.fleet_day_tokens is not None and fleet.tokens >= budgets.fleet_day_tokens:
            return (
                f"fleet daily budget reached: {fleet.tokens:,} tokens today "
                f"of {budgets.fleet_day_tokens:,}"
            )
    return None
