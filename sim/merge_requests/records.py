"""Merge-request storage: the tables, per-project merge settings, and row access.

Merge requests have their own per-project iid sequence (``!1`` and ``#1`` are different
things on GitLab). ``head_sha``/``base_sha``/``start_sha`` are the diff refs as of the last
time the MR was refreshed (created, pushed to, merged or closed); an open MR's live refs
come from git, the stored ones keep closed and merged MRs answering after their source
branch is gone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sim.core.base import GUEST, SIM_KEY, Sim, load_project
from sim.core.http import not_found
from sim.core.store import Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS merge_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    iid INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'opened',
    source_branch TEXT NOT NULL,
    target_branch TEXT NOT NULL,
    head_sha TEXT,
    base_sha TEXT,
    start_sha TEXT,
    author_id INTEGER NOT NULL REFERENCES users(id),
    assignee_ids TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    remove_source_branch INTEGER NOT NULL DEFAULT 0,
    squash INTEGER NOT NULL DEFAULT 0,
    approvals_required INTEGER,
    merge_commit_sha TEXT,
    squash_commit_sha TEXT,
    merged_by_id INTEGER REFERENCES users(id),
    merged_at TEXT,
    closed_by_id INTEGER REFERENCES users(id),
    closed_at TEXT,
    merge_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, iid)
);
CREATE INDEX IF NOT EXISTS merge_requests_source ON merge_requests (project_id, source_branch, state);
CREATE TABLE IF NOT EXISTS mr_approvals (
    merge_request_id INTEGER NOT NULL REFERENCES merge_requests(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    sha TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (merge_request_id, user_id)
);
CREATE TABLE IF NOT EXISTS mr_project_settings (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    merge_method TEXT NOT NULL DEFAULT 'merge',
    only_allow_merge_if_pipeline_succeeds INTEGER NOT NULL DEFAULT 0,
    only_allow_merge_if_all_discussions_are_resolved INTEGER NOT NULL DEFAULT 0,
    approvals_before_merge INTEGER NOT NULL DEFAULT 0,
    remove_source_branch_after_merge INTEGER NOT NULL DEFAULT 1
)
"""


@dataclass(frozen=True)
class MergeSettings:
    """A project's merge-request settings; GitLab's defaults when never set."""

    merge_method: str = "merge"
    only_allow_merge_if_pipeline_succeeds: bool = False
    only_allow_merge_if_all_discussions_are_resolved: bool = False
    approvals_before_merge: int = 0
    remove_source_branch_after_merge: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "merge_method": self.merge_method,
            "only_allow_merge_if_pipeline_succeeds": self.only_allow_merge_if_pipeline_succeeds,
            "only_allow_merge_if_all_discussions_are_resolved": (
                self.only_allow_merge_if_all_discussions_are_resolved
            ),
            "approvals_before_merge": self.approvals_before_merge,
            "remove_source_branch_after_merge": self.remove_source_branch_after_merge,
        }


SETTING_NAMES = tuple(MergeSettings().as_json())


async def merge_settings(sim: Sim, project_id: int) -> MergeSettings:
    row = await sim.store.fetchone(
        "SELECT * FROM mr_project_settings WHERE project_id = ?", (project_id,)
    )
    if row is None:
        return MergeSettings()
    return MergeSettings(
        merge_method=row["merge_method"],
        only_allow_merge_if_pipeline_succeeds=bool(row["only_allow_merge_if_pipeline_succeeds"]),
        only_allow_merge_if_all_discussions_are_resolved=bool(
            row["only_allow_merge_if_all_discussions_are_resolved"]
        ),
        approvals_before_merge=int(row["approvals_before_merge"]),
        remove_source_branch_after_merge=bool(row["remove_source_branch_after_merge"]),
    )


async def save_merge_settings(sim: Sim, project_id: int, settings: MergeSettings) -> None:
    values = settings.as_json()
    columns = ", ".join(SETTING_NAMES)
    marks = ", ".join("?" for _ in SETTING_NAMES)
    async with sim.store.write() as conn:
        await conn.execute(
            f"INSERT OR REPLACE INTO mr_project_settings (project_id, {columns}) VALUES (?, {marks})",
            (project_id, *(_sql_value(values[name]) for name in SETTING_NAMES)),
        )


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


# ---------------------------------------------------------------- rows


def labels_of(mr: sqlite3.Row) -> list[str]:
    labels: list[str] = json.loads(mr["labels"])
    return labels


def assignee_ids_of(mr: sqlite3.Row) -> list[int]:
    ids: list[int] = json.loads(mr["assignee_ids"])
    return ids


async def mr_by_iid(sim: Sim, project_id: int, iid: int) -> sqlite3.Row | None:
    return await sim.store.fetchone(
        "SELECT * FROM merge_requests WHERE project_id = ? AND iid = ?", (project_id, iid)
    )


async def mr_by_id(sim: Sim, mr_id: int) -> sqlite3.Row:
    row = await sim.store.fetchone("SELECT * FROM merge_requests WHERE id = ?", (mr_id,))
    if row is None:
        raise LookupError(f"merge request id {mr_id} vanished")
    return row


async def load_merge_request(
    request: web.Request, min_access: int = GUEST
) -> tuple[sqlite3.Row, sqlite3.Row]:
    """The project and merge request named by ``{id}`` and ``{iid}``: 404 when either is missing."""
    project = await load_project(request, min_access)
    try:
        iid = int(request.match_info["iid"])
    except ValueError:
        not_found()
    mr = await mr_by_iid(request.app[SIM_KEY], int(project["id"]), iid)
    if mr is None:
        not_found()
    return project, mr


async def update_mr(conn: Connection, mr_id: int, fields: dict[str, Any]) -> None:
    """Set ``fields`` on one merge request inside the caller's write transaction."""
    if not fields:
        return
    assignments = ", ".join(f"{name} = ?" for name in fields)
    await conn.execute(
        f"UPDATE merge_requests SET {assignments} WHERE id = ?",
        (*(_sql_value(v) for v in fields.values()), mr_id),
    )


async def open_mr_for_source(sim: Sim, project_id: int, source_branch: str) -> sqlite3.Row | None:
    return await sim.store.fetchone(
        "SELECT * FROM merge_requests WHERE project_id = ? AND source_branch = ?"
        " AND state = 'opened' ORDER BY iid LIMIT 1",
        (project_id, source_branch),
    )


async def approver_rows(sim: Sim, mr_id: int) -> list[sqlite3.Row]:
    return await sim.store.fetchall(
        "SELECT users.*, mr_approvals.sha AS approved_sha,"
        " mr_approvals.created_at AS approved_at FROM mr_approvals"
        " JOIN users ON users.id = mr_approvals.user_id"
        " WHERE mr_approvals.merge_request_id = ? ORDER BY mr_approvals.created_at, users.id",
        (mr_id,),
    )


def approvals_required(mr: sqlite3.Row, settings: MergeSettings) -> int:
    """The MR's own requirement when set (``POST /approvals``), else the project's."""
    own = mr["approvals_required"]
    return int(own) if own is not None else settings.approvals_before_merge


async def discussion_counts(sim: Sim, mr_id: int) -> tuple[int, int]:
    """(user notes, unresolved resolvable discussions) of one merge request, read from the
    shared ``notes`` table of :mod:`sim.issues.notes`."""
    row = await sim.store.fetchone(
        "SELECT COUNT(*) FILTER (WHERE system = 0),"
        " COUNT(DISTINCT discussion_id) FILTER (WHERE resolvable = 1 AND resolved = 0)"
        " FROM notes WHERE noteable_type = 'MergeRequest' AND noteable_id = ?",
        (mr_id,),
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)
