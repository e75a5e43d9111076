"""The Issue Hook of an issue change: GitLab's ``changes`` between two records and the event on
the bus."""

from __future__ import annotations

import sqlite3
from typing import Any

from sim.core.base import (
    Sim,
)
from sim.core.events import SimEvent
from sim.core.hook_payloads import change, issue_payload, label_hook_json, user_hook_json
from sim.issues import records as issue_records
from sim.issues.records import (
    STATE_IDS,
    IssueRecord,
    issue_hook_attributes,
)

_TRACKED = (
    "title",
    "description",
    "closed_at",
    "confidential",
    "discussion_locked",
    "due_date",
    "updated_at",
    "updated_by_id",
    "last_edited_at",
    "last_edited_by_id",
)


_TRACKED_ON_OPEN = ("id", "iid", "project_id", "author_id", "created_at")


def hook_changes(sim: Sim, before: IssueRecord | None, after: IssueRecord) -> dict[str, Any]:
    """GitLab's ``changes``: ``{"attr": {"previous": ..., "current": ...}}`` for every
    attribute that differs (on open, the previous values are null or empty)."""
    changes: dict[str, Any] = {}
    tracked = _TRACKED if before is not None else (*_TRACKED_ON_OPEN, *_TRACKED)
    for name in tracked:
        previous = before.row[name] if before is not None else None
        if previous != after.row[name]:
            changes[name] = change(previous, after.row[name])
    previous_state = STATE_IDS[before.row["state"]] if before is not None else None
    if previous_state != STATE_IDS[after.row["state"]]:
        changes["state_id"] = change(previous_state, STATE_IDS[after.row["state"]])
    before_labels = before.labels if before is not None else []
    if [label["id"] for label in before_labels] != [label["id"] for label in after.labels]:
        changes["labels"] = change(
            [label_hook_json(label) for label in before_labels],
            [label_hook_json(label) for label in after.labels],
        )
    before_assignees = before.assignees if before is not None else []
    if [u["id"] for u in before_assignees] != [u["id"] for u in after.assignees]:
        changes["assignees"] = change(
            [user_hook_json(sim, u) for u in before_assignees],
            [user_hook_json(sim, u) for u in after.assignees],
        )
    return changes


def emit_issue_event(
    sim: Sim,
    project: sqlite3.Row,
    user: sqlite3.Row,
    before: IssueRecord | None,
    after: IssueRecord,
    action: str,
) -> None:
    payload = issue_payload(
        sim,
        project,
        user,
        issue_hook_attributes(sim, project, after, action),
        labels=[label_hook_json(label) for label in after.labels],
        assignees=issue_records.assignees_hook_json(sim, after),
        changes=hook_changes(sim, before, after),
    )
    sim.events.emit(SimEvent("issue", int(project["id"]), payload))
