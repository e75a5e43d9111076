"""Resource label events: one row per label added to or removed from an issuable.

``/projects/:id/issues/:iid/resource_label_events`` (list, get). The merge-request module
records its own with :func:`record_label_events` (``resource_type="MergeRequest"``) and
serves them with :func:`register_label_event_routes`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sim.core.base import API, SIM_KEY, Sim, load_project, user_json
from sim.core.http import not_found, paginate
from sim.core.store import Connection
from sim.issues.noteables import users_by_ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS resource_label_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id INTEGER NOT NULL,
    label_id INTEGER,
    label_name TEXT NOT NULL,
    label_color TEXT NOT NULL,
    label_description TEXT,
    user_id INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_label_events_by_resource
    ON resource_label_events (resource_type, resource_id)
"""

# (sim, project row, iid) -> the resource's global id, or None when there is no such resource
ResourceResolver = Callable[[Sim, sqlite3.Row, int], Awaitable[int | None]]


async def record_label_events(
    conn: Connection,
    *,
    project_id: int,
    resource_type: str,
    resource_id: int,
    user_id: int,
    added: list[sqlite3.Row],
    removed: list[sqlite3.Row],
    stamp: str,
) -> None:
    """Append one event per label row (label table rows). Call inside a write transaction."""
    for action, labels in (("add", added), ("remove", removed)):
        for label in labels:
            await conn.execute(
                "INSERT INTO resource_label_events (project_id, resource_type, resource_id,"
                " label_id, label_name, label_color, label_description, user_id, action, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project_id,
                    resource_type,
                    resource_id,
                    label["id"],
                    label["name"],
                    label["color"],
                    label["description"],
                    user_id,
                    action,
                    stamp,
                ),
            )


_SELECT = "SELECT * FROM resource_label_events e"


def label_event_json(sim: Sim, row: sqlite3.Row, user: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": user_json(sim, user),
        "created_at": row["created_at"],
        "resource_type": row["resource_type"],
        "resource_id": row["resource_id"],
        "label": {
            "id": row["label_id"],
            "name": row["label_name"],
            "color": row["label_color"],
            "description": row["label_description"],
        },
        "action": row["action"],
    }


def register_label_event_routes(
    app: web.Application, kind_path: str, resource_type: str, resolve: ResourceResolver
) -> None:
    """Add ``/projects/:id/<kind_path>/:iid/resource_label_events[/:event_id]``."""

    async def resource_id_of(request: web.Request) -> tuple[Sim, int]:
        sim = request.app[SIM_KEY]
        project = await load_project(request)
        resource_id = await resolve(sim, project, int(request.match_info["iid"]))
        if resource_id is None:
            not_found()
        return sim, resource_id

    async def list_events(request: web.Request) -> web.Response:
        sim, resource_id = await resource_id_of(request)
        rows = await sim.store.fetchall(
            f"{_SELECT} WHERE e.resource_type = ? AND e.resource_id = ? ORDER BY e.id",
            (resource_type, resource_id),
        )
        users = await users_by_ids(sim, [int(row["user_id"]) for row in rows])
        return paginate(
            request, [label_event_json(sim, row, users[int(row["user_id"])]) for row in rows]
        )

    async def get_event(request: web.Request) -> web.Response:
        sim, resource_id = await resource_id_of(request)
        row = await sim.store.fetchone(
            f"{_SELECT} WHERE e.resource_type = ? AND e.resource_id = ? AND e.id = ?",
            (resource_type, resource_id, int(request.match_info["event_id"])),
        )
        if row is None:
            not_found()
        users = await users_by_ids(sim, [int(row["user_id"])])
        return web.json_response(label_event_json(sim, row, users[int(row["user_id"])]))

    base = f"{API}/projects/{{id}}/{kind_path}/{{iid:\\d+}}/resource_label_events"
    app.router.add_get(base, list_events)
    app.router.add_get(f"{base}/{{event_id:\\d+}}", get_event)


def setup(app: web.Application, sim: Sim) -> None:
    """Nothing to add: each noteable module registers its own routes (see the docstring)."""
