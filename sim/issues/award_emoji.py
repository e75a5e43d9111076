"""Award emoji on the notes of issues (``/issues/:iid/notes/:note_id/award_emoji``) and
their webhook event.

GitLab's shape: an award is ``{id, name, user, created_at, updated_at, awardable_id,
awardable_type: "Note"}``; a user awards one name once per note (404 for a name GitLab does
not know is not modelled: any ``[a-z0-9_+-]`` name is taken). Awarding and removing emit an
Emoji Hook (``object_kind: "emoji"``, ``event_type: "award"`` or ``"revoke"``) with the note
and the issue it is on, to hooks with ``emoji_events``.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    GUEST,
    SIM_KEY,
    Sim,
    current_user,
    load_project,
    user_by_id,
    user_json,
)
from sim.core.events import SimEvent
from sim.core.hook_payloads import note_event
from sim.core.http import Params, created, fail, no_content, not_found, now_iso
from sim.issues.note_json import note_hook_attributes
from sim.issues.noteables import Noteable, load_noteable
from sim.issues.notes import get_note

SCHEMA = """
CREATE TABLE IF NOT EXISTS award_emoji (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    note_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (note_id, user_id, name)
)
"""

_NAME = re.compile(r"^[a-z0-9_+-]{1,64}$")


async def _note_of(request: web.Request) -> tuple[Sim, sqlite3.Row, Noteable, sqlite3.Row]:
    sim = request.app[SIM_KEY]
    project = await load_project(request, GUEST)
    issue = await load_noteable(sim, project, "Issue", int(request.match_info["iid"]))
    if issue is None:
        not_found()
    note = await get_note(sim, int(request.match_info["note_id"]))
    if note is None or note["noteable_type"] != "Issue" or note["noteable_id"] != issue.id:
        not_found("Note Not Found")
    return sim, project, issue, note


async def _award_json(sim: Sim, row: sqlite3.Row) -> dict[str, Any]:
    user = await user_by_id(sim, int(row["user_id"]))
    assert user is not None  # users are never deleted in the simulator
    return {
        "id": row["id"],
        "name": row["name"],
        "user": user_json(sim, user),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "awardable_id": row["note_id"],
        "awardable_type": "Note",
    }


def _emit(
    sim: Sim,
    project: sqlite3.Row,
    user: sqlite3.Row,
    issue: Noteable,
    note: sqlite3.Row,
    award: sqlite3.Row,
    event_type: str,
) -> None:
    attributes = {
        "user_id": award["user_id"],
        "created_at": award["created_at"],
        "id": award["id"],
        "name": award["name"],
        "awardable_type": "Note",
        "awardable_id": award["note_id"],
        "updated_at": award["updated_at"],
        "awarded_on_url": f"{issue.web_url}#note_{note['id']}",
    }
    attached = {
        "note": note_hook_attributes(sim, note, issue, "update"),
        "issue": issue.hook_attributes,
    }
    payload = note_event(sim, "emoji", project, user, attributes, attached)
    payload["event_type"] = event_type  # "award" or "revoke", not the kind
    sim.events.emit(SimEvent("emoji", int(project["id"]), payload))


async def list_awards(request: web.Request) -> web.Response:
    sim, _, _, note = await _note_of(request)
    rows = await sim.store.fetchall(
        "SELECT * FROM award_emoji WHERE note_id = ? ORDER BY id", (note["id"],)
    )
    return web.json_response([await _award_json(sim, row) for row in rows])


async def get_award(request: web.Request) -> web.Response:
    sim, _, _, note = await _note_of(request)
    row = await _award_row(sim, note, int(request.match_info["award_id"]))
    return web.json_response(await _award_json(sim, row))


async def _award_row(sim: Sim, note: sqlite3.Row, award_id: int) -> sqlite3.Row:
    rows = await sim.store.fetchall(
        "SELECT * FROM award_emoji WHERE id = ? AND note_id = ?", (award_id, note["id"])
    )
    if not rows:
        not_found("Award Emoji Not Found")
    return rows[0]


async def award(request: web.Request) -> web.Response:
    sim, project, issue, note = await _note_of(request)
    user = current_user(request)
    name = (await Params.of(request)).required("name")
    if not _NAME.match(name):
        fail(400, "400 Bad request - name is invalid", key="error")
    stamp = now_iso()
    async with sim.store.write() as conn:
        cursor = await conn.execute(
            "INSERT OR IGNORE INTO award_emoji (note_id, user_id, name, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (note["id"], user["id"], name, stamp, stamp),
        )
        inserted = cursor.rowcount == 1
    if not inserted:  # GitLab: "Award Emoji has already been taken"
        fail(404, "404 Award Emoji Not Found")
    rows = await sim.store.fetchall(
        "SELECT * FROM award_emoji WHERE note_id = ? AND user_id = ? AND name = ?",
        (note["id"], user["id"], name),
    )
    _emit(sim, project, user, issue, note, rows[0], "award")
    return created(await _award_json(sim, rows[0]))


async def revoke(request: web.Request) -> web.Response:
    sim, project, issue, note = await _note_of(request)
    user = current_user(request)
    row = await _award_row(sim, note, int(request.match_info["award_id"]))
    if int(row["user_id"]) != int(user["id"]):
        fail(403, "403 Forbidden")
    async with sim.store.write() as conn:
        await conn.execute("DELETE FROM award_emoji WHERE id = ?", (row["id"],))
    _emit(sim, project, user, issue, note, row, "revoke")
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/issues/{{iid:\\d+}}/notes/{{note_id:\\d+}}/award_emoji"
    app.router.add_get(base, list_awards)
    app.router.add_post(base, award)
    app.router.add_get(f"{base}/{{award_id:\\d+}}", get_award)
    app.router.add_delete(f"{base}/{{award_id:\\d+}}", revoke)
