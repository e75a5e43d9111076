"""Stuck work: what has not moved for too long, what waits for a human, and what to do.

Used by the janitor (to tell the notifier, once per stay in a state), by
`crewline status --stuck` and by the Discord /stuck command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from forge.types import Issue
from roles.context import Services
from workflow import StateKind

_ACTIONS = {
    StateKind.TERMINAL: "read the last note, fix the cause, then retry (re-queue) the issue",
    StateKind.GATE: "a human decides: approve, or request changes",
    StateKind.WAITING: "answer the agent's question",
    StateKind.RUNNING: "check the worker named in the claim note; the janitor re-queues it once "
    "its claim expires",
    StateKind.READY: "check `crewline status` for why it waits (dependencies, overlapping work, "
    "pause, budget)",
}


@dataclass(frozen=True)
class StuckItem:
    project: str
    iid: int
    title: str
    state: str
    since: str  # when it entered the state (ISO 8601)
    hours: float
    reason: str
    action: str
    url: str


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def entered_at(services: Services, issue: Issue, label: str) -> str:
    """When ``label`` was last added to the issue (its updated time if never recorded).
    Remembered until the issue changes: the janitor asks for every waiting issue on every
    pass, and the label events of an unchanged issue are the same."""

    async def read() -> str:
        events = await services.gateway.label_events(issue.project, issue.iid)
        adds = [e.created_at for e in events if e.action == "add" and e.label == label]
        return max(adds, default=issue.updated_at or issue.created_at)

    return await services.entered.get(issue, label, read)


async def stuck_items(
    services: Services,
    *,
    stuck_after: float,
    by_state: Mapping[str, float] | None = None,
    now: datetime | None = None,
    max_age: float = 0.0,
) -> list[StuckItem]:
    """Blocked and failed items (always), and any other non-done item that has been in its
    state longer than its threshold, oldest first. From the project's listing, refreshed
    unless it is at most ``max_age`` seconds old (forge/issue_index)."""
    now = now or datetime.now(UTC)
    thresholds = by_state or {}
    items: list[StuckItem] = []
    for project in services.projects:
        listing = await services.gateway.issues.current(project, max_age=max_age)
        for state in services.workflow:
            if state.name == "done":
                continue
            for issue in listing.at(state.label):
                since = await entered_at(services, issue, state.label)
                seconds = (now - _parse(since)).total_seconds()
                limit = thresholds.get(state.name, stuck_after)
                if state.kind is StateKind.TERMINAL:
                    reason = f"{state.name}: {state.description.removeprefix('crewline: ')}"
                elif seconds >= limit:
                    reason = f"no transition for {seconds / 3600:.1f} h in {state.name}"
                else:
                    continue
                items.append(
                    StuckItem(
                        project,
                        issue.iid,
                        issue.title,
                        state.name,
                        since,
                        round(seconds / 3600, 2),
                        reason,
                        _ACTIONS[state.kind],
                        issue.web_url,
                    )
                )
    return sorted(items, key=lambda item: item.since)
