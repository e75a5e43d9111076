"""Issues as stored and as shown: the tables, loading an issue with its labels and
assignees, GitLab's REST shape (:func:`issue_json`) and webhook shape
(:func:`issue_hook_attributes`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sim.core.base import Sim, user_json
from sim.core.hook_payloads import label_hook_json, user_hook_json
from sim.issues.noteables import Noteable, users_by_ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS issues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    iid INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    state TEXT NOT NULL DEFAULT 'opened' CHECK (state IN ('opened', 'closed')),
    author_id INTEGER NOT NULL REFERENCES users(id),
    confidential INTEGER NOT NULL DEFAULT 0,
    discussion_locked INTEGER,
    due_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at TEXT,
    closed_by_id INTEGER,
    updated_by_id INTEGER,
    last_edited_at TEXT,
    last_edited_by_id INTEGER,
    UNIQUE (project_id, iid)
);
CREATE TABLE IF NOT EXISTS issue_labels (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    PRIMARY KEY (issue_id, label_id)
);
CREATE TABLE IF NOT EXISTS issue_assignees (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (issue_id, user_id)
)
"""

STATE_IDS = {"opened": 1, "closed": 2}


@dataclass(frozen=True)
class IssueRecord:
    row: sqlite3.Row
    labels: list[sqlite3.Row]  # label rows, sorted by name as GitLab lists them
    assignees: list[sqlite3.Row]  # user rows, in assignment order
    author: sqlite3.Row
    closed_by: sqlite3.Row | None
    user_notes_count: int
    blocking_issues_count: int

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def iid(self) -> int:
        return int(self.row["iid"])

    @property
    def label_names(self) -> list[str]:
        return [label["name"] for label in self.labels]


async def load_records(sim: Sim, rows: list[sqlite3.Row]) -> list[IssueRecord]:
    """Attach labels, assignees, authors and counts to issue rows (a few queries in all)."""
    if not rows:
        return []
    ids = [int(row["id"]) for row in rows]
    marks = ",".join("?" * len(ids))
    label_rows = await sim.store.fetchall(
        f"SELECT issue_labels.issue_id, labels.* FROM issue_labels"
        f" JOIN labels ON labels.id = issue_labels.label_id"
        f" WHERE issue_labels.issue_id IN ({marks}) ORDER BY labels.name",
        ids,
    )
    assignee_rows = await sim.store.fetchall(
        f"SELECT issue_id, user_id FROM issue_assignees WHERE issue_id IN ({marks})"
        f" ORDER BY position",
        ids,
    )
    note_counts = await sim.store.fetchall(
        f"SELECT noteable_id, COUNT(*) FROM notes WHERE noteable_type = 'Issue' AND system = 0"
        f" AND noteable_id IN ({marks}) GROUP BY noteable_id",
        ids,
    )
    blocking = await sim.store.fetchall(
        f"SELECT issue_links.source_issue_id, COUNT(*) FROM issue_links"
        f" JOIN issues target ON target.id = issue_links.target_issue_id"
        f" WHERE issue_links.link_type = 'blocks' AND target.state = 'opened'"
        f" AND issue_links.source_issue_id IN ({marks}) GROUP BY issue_links.source_issue_id",
        ids,
    )
    user_ids = [int(r["author_id"]) for r in rows] + [int(r["user_id"]) for r in assignee_rows]
    user_ids += [int(r["closed_by_id"]) for r in rows if r["closed_by_id"]]
    users = await users_by_ids(sim, user_ids)
    counts = {int(r[0]): int(r[1]) for r in note_counts}
    blocks = {int(r[0]): int(r[1]) for r in blocking}
    records = []
    for row in rows:
        issue_id = int(row["id"])
        records.append(
            IssueRecord(
                row=row,
                labels=[label for label in label_rows if label["issue_id"] == issue_id],
                assignees=[
                    users[int(a["user_id"])] for a in assignee_rows if a["issue_id"] == issue_id
                ],
                author=users[int(row["author_id"])],
                closed_by=users.get(int(row["closed_by_id"])) if row["closed_by_id"] else None,
                user_notes_count=counts.get(issue_id, 0),
                blocking_issues_count=blocks.get(issue_id, 0),
            )
        )
    return records


async def load_issue(sim: Sim, project_id: int, iid: int) -> IssueRecord | None:
    row = await sim.store.fetchone(
        "SELECT * FROM issues WHERE project_id = ? AND iid = ?", (project_id, iid)
    )
    if row is None:
        return None
    return (await load_records(sim, [row]))[0]


def project_full_path(project: sqlite3.Row) -> str:
    return f"{project['namespace']}/{project['path']}"


def issue_web_url(sim: Sim, project: sqlite3.Row, iid: int) -> str:
    return f"{sim.base_url}/{project_full_path(project)}/-/issues/{iid}"


def issue_json(sim: Sim, project: sqlite3.Row, record: IssueRecord) -> dict[str, Any]:
    row = record.row
    assignees = [user_json(sim, user) for user in record.assignees]
    api_self = f"{sim.base_url}/api/v4/projects/{project['id']}/issues/{row['iid']}"
    return {
        "id": row["id"],
        "iid": row["iid"],
        "project_id": row["project_id"],
        "title": row["title"],
        "description": row["description"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "closed_at": row["closed_at"],
        "closed_by": user_json(sim, record.closed_by) if record.closed_by else None,
        "labels": record.label_names,
        "milestone": None,
        "assignees": assignees,
        "assignee": assignees[0] if assignees else None,
        "author": user_json(sim, record.author),
        "type": "ISSUE",
        "issue_type": "issue",
        "user_notes_count": record.user_notes_count,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": row["due_date"],
        "confidential": bool(row["confidential"]),
        "discussion_locked": None
        if row["discussion_locked"] is None
        else bool(row["discussion_locked"]),
        "web_url": issue_web_url(sim, project, int(row["iid"])),
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "weight": None,
        "blocking_issues_count": record.blocking_issues_count,
        "has_tasks": False,
        "_links": {
            "self": api_self,
            "notes": f"{api_self}/notes",
            "award_emoji": f"{api_self}/award_emoji",
            "project": f"{sim.base_url}/api/v4/projects/{project['id']}",
            "closed_as_duplicate_of": None,
        },
        "references": {
            "short": f"#{row['iid']}",
            "relative": f"#{row['iid']}",
            "full": f"{project_full_path(project)}#{row['iid']}",
        },
        "severity": "UNKNOWN",
        "subscribed": False,
        "moved_to_id": None,
        "service_desk_reply_to": None,
        "epic_iid": None,
        "epic": None,
        "iteration": None,
        "health_status": None,
    }


def issue_hook_attributes(
    sim: Sim, project: sqlite3.Row, record: IssueRecord, action: str | None = None
) -> dict[str, Any]:
    """An Issue Hook's ``object_attributes`` (also the ``issue`` object of Note Hooks, where
    ``action`` is absent)."""
    row = record.row
    assignee_ids = [int(user["id"]) for user in record.assignees]
    body: dict[str, Any] = {
        "id": row["id"],
        "iid": row["iid"],
        "title": row["title"],
        "description": row["description"],
        "project_id": row["project_id"],
        "author_id": row["author_id"],
        "assignee_ids": assignee_ids,
        "assignee_id": assignee_ids[0] if assignee_ids else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "updated_by_id": row["updated_by_id"],
        "last_edited_at": row["last_edited_at"],
        "last_edited_by_id": row["last_edited_by_id"],
        "closed_at": row["closed_at"],
        "state": row["state"],
        "state_id": STATE_IDS[row["state"]],
        "confidential": bool(row["confidential"]),
        "discussion_locked": row["discussion_locked"],
        "due_date": row["due_date"],
        "moved_to_id": None,
        "duplicated_to_id": None,
        "milestone_id": None,
        "relative_position": None,
        "time_estimate": 0,
        "total_time_spent": 0,
        "time_change": 0,
        "human_total_time_spent": None,
        "human_time_estimate": None,
        "human_time_change": None,
        "weight": None,
        "health_status": None,
        "type": "Issue",
        "url": issue_web_url(sim, project, int(row["iid"])),
        "severity": "unknown",
        "labels": [label_hook_json(label) for label in record.labels],
        "customer_relations_contacts": [],
    }
    if action is not None:
        body["action"] = action
    return body


def assignees_hook_json(sim: Sim, record: IssueRecord) -> list[dict[str, Any]]:
    return [user_hook_json(sim, user) for user in record.assignees]


async def issue_noteable(sim: Sim, project: sqlite3.Row, iid: int) -> Noteable | None:
    """The :data:`sim.issues.noteables.NoteableLoader` for issues."""
    record = await load_issue(sim, int(project["id"]), iid)
    if record is None:
        return None
    return Noteable(
        type="Issue",
        id=record.id,
        iid=record.iid,
        table="issues",
        web_url=issue_web_url(sim, project, record.iid),
        hook_key="issue",
        hook_attributes=issue_hook_attributes(sim, project, record),
    )


async def issue_id_of(sim: Sim, project: sqlite3.Row, iid: int) -> int | None:
    """The :data:`sim.issues.label_events.ResourceResolver` for issues."""
    row = await sim.store.fetchone(
        "SELECT id FROM issues WHERE project_id = ? AND iid = ?", (project["id"], iid)
    )
    return int(row[0]) if row else None
