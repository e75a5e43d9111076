"""The weekly flaky digest: one note per ISO week on each project's control issue.

The note is keyed by its week (``<!-- crewline:note key=flaky-digest:2026-W49 -->``), found
or created on the control issue (forge/control.py) and edited in place by every doctor pass
of that week on any host, so hosts and restarts leave one note a week, not one per pass. It
lists the board's summary (tests by stage and cause, CI runs and minutes spent) and the worst
offenders still to be fixed, highest failure rate first. A project that has never had a
flaky test gets no control issue for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from forge.control import ControlIssues
from roles.flaky.board import FlakyBoard, row_line, summary_line
from roles.flaky.runs import live_note
from roles.ports import IssueTracker

log = logging.getLogger(__name__)

WORST = 5


def iso_week(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def weekly_key(week: str) -> str:
    return f"flaky-digest:{week}"


def weekly_body(board: FlakyBoard, week: str) -> str:
    worst = board.worst(WORST)
    lines = [f"**Flaky tests, week {week}**", "", summary_line(board), ""]
    if worst:
        lines += ["Worst offenders still to fix:", ""]
        lines += [f"- {row_line(row)}" for row in worst]
    else:
        lines.append("No flaky test is waiting for a fix.")
    return "\n".join(lines)


async def post_weekly(
    gateway: IssueTracker, project: str, board: FlakyBoard, *, now: datetime | None = None
) -> int | None:
    """This week's flaky note on the project's control issue, created or brought up to date;
    the control issue's iid, or None when there was nothing to say and no note yet."""
    week = iso_week(now or datetime.now(UTC))
    key = weekly_key(week)
    control = ControlIssues(gateway)
    if board.rows:
        issue = await control.ensure(project)
    else:
        found = await control.find(project)
        if found is None or await gateway.find_note(project, found.iid, key) is None:
            return None
        issue = found
    await live_note(gateway, project, issue.iid, key, weekly_body(board, week))
    log.info("weekly flaky note: project=%s week=%s issue=#%s", project, week, issue.iid)
    return issue.iid
