"""Notes (comments) on any noteable: issues here, merge requests in their own module.

Every note, whatever it is attached to, lives in ONE ``notes`` table whose ids come from a
single increasing sequence (``AUTOINCREMENT`` under the store's write lock), as GitLab's
note ids do: crewline's claim protocol relies on "the lowest note id wins".

Public API (for the merge-request module and tests)
---------------------------------------------------
``Noteable(type, id, iid, table, web_url, hook_key, hook_attributes)``
    What a note hangs on: ``type`` "Issue" | "MergeRequest", the global ``id`` and ``iid``,
    the ``table`` whose ``updated_at`` a new note touches (GitLab touches the noteable),
    its ``web_url``, and the key + object GitLab puts in Note Hook payloads
    (``"issue"``/``"merge_request"``).
``NoteableLoader = Callable[[Sim, project_row, iid], Awaitable[Noteable | None]]``
``register_noteable_routes(app, kind_path, noteable_type, loader, *, comment_access=GUEST)``
    Adds ``GET/POST /projects/:id/<kind_path>/:iid/notes`` and
    ``GET/PUT/DELETE /projects/:id/<kind_path>/:iid/notes/:note_id`` and registers ``loader``
    so :func:`create_note` can find noteables of that type. Call it from ``setup``.
``await create_note(sim, project, noteable_type, noteable_iid, author, body, *, system=False,
        internal=False, discussion_id=None, position=None, note_type=None, resolvable=False,
        emit=True) -> sqlite3.Row``
    Inserts a note, touches the noteable and (unless ``system``) emits a ``note`` event.
    Raises ``LookupError`` when the noteable does not exist.
``await insert_system_note(conn, project_id, noteable_type, noteable_id, noteable_iid,
        author_id, body, stamp)``: a system note inside the caller's write transaction.
``await update_note(sim, project, note, body, editor) -> sqlite3.Row``
``await set_resolved(sim, note_ids, resolver_id_or_None)``  (resolvable MR discussions)
``await get_note(sim, note_id)``, ``await list_notes(sim, noteable_type, noteable_id)``
``await note_json(sim, row)`` / ``await notes_json(sim, rows)``: GitLab's note shape.
``note_hook_attributes(sim, row, noteable, action)``: a Note Hook's ``object_attributes``.
``later_than(previous_iso) -> str``: now, or 1 ms after ``previous`` if the clock has not moved,
    so every change strictly advances ``updated_at``.
``users_by_ids(sim, ids) -> dict[int, Row]``.

Columns of ``notes`` other modules may read: id, project_id, noteable_type, noteable_id,
noteable_iid, author_id, body, system, internal, type, discussion_id, position (JSON text),
resolvable, resolved, resolved_by_id, resolved_at, created_at, updated_at.

Access: Guest+ may comment (``comment_access``); the author or a Maintainer+ may edit or
delete a note; system notes cannot be edited. System notes emit no webhook.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    GUEST,
    MAINTAINER,
    SIM_KEY,
    Sim,
    access_level,
    current_user,
    load_project,
    user_json,
)
from sim.core.events import SimEvent
from sim.core.hook_payloads import note_payload
from sim.core.http import (
    Params,
    created,
    fail,
    forbidden,
    iso,
    no_content,
    not_found,
    now_iso,
    paginate,
    parse_iso,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL,
    noteable_type TEXT NOT NULL,
    noteable_id INTEGER NOT NULL,
    noteable_iid INTEGER NOT NULL,
    author_id INTEGER NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    system INTEGER NOT NULL DEFAULT 0,
    internal INTEGER NOT NULL DEFAULT 0,
    type TEXT,
    discussion_id TEXT NOT NULL,
    position TEXT,
    resolvable INTEGER NOT NULL DEFAULT 0,
    resolved INTEGER NOT NULL DEFAULT 0,
    resolved_by_id INTEGER,
    resolved_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_noteable ON notes (noteable_type, noteable_id)
"""


@dataclass(frozen=True)
class Noteable:
    type: str
    id: int
    iid: int
    table: str
    web_url: str
    hook_key: str
    hook_attributes: dict[str, Any]


NoteableLoader = Callable[[Sim, sqlite3.Row, int], Awaitable[Noteable | None]]

_LOADERS: dict[str, NoteableLoader] = {}


def later_than(previous: str | None) -> str:
    """Now, or one millisecond after ``previous`` when the clock has not moved past it."""
    stamp = now_iso()
    if previous is None or stamp > previous:
        return stamp
    return iso(parse_iso(previous) + timedelta(milliseconds=1))


async def users_by_ids(sim: Sim, ids: Iterable[int]) -> dict[int, sqlite3.Row]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = await sim.store.fetchall(f"SELECT * FROM users WHERE id IN ({marks})", wanted)
    return {int(row["id"]): row for row in rows}


async def load_noteable(
    sim: Sim, project: sqlite3.Row, noteable_type: str, iid: int
) -> Noteable | None:
    loader = _LOADERS.get(noteable_type)
    if loader is None:
        raise LookupError(f"no noteable type {noteable_type!r} is registered")
    return await loader(sim, project, iid)


# ---------------------------------------------------------------- storage


async def create_note(
    sim: Sim,
    project: sqlite3.Row,
    noteable_type: str,
    noteable_iid: int,
    author: sqlite3.Row,
    body: str,
    *,
    system: bool = False,
    internal: bool = False,
    discussion_id: str | None = None,
    position: dict[str, Any] | None = None,
    note_type: str | None = None,
    resolvable: bool = False,
    emit: bool = True,
) -> sqlite3.Row:
    noteable = await load_noteable(sim, project, noteable_type, noteable_iid)
    if noteable is None:
        raise LookupError(f"{noteable_type} !{noteable_iid} not found in project {project['id']}")
    async with sim.store.write() as conn:
        stamp = await _touch(conn, noteable)  # the new note carries the same stamp
        row = await _insert(
            conn, project, noteable.type, noteable.id, noteable.iid, int(author["id"]), body,
            stamp, system=system, internal=internal, discussion_id=discussion_id,
            position=position, note_type=note_type, resolvable=resolvable,
        )  # fmt: skip
    if emit and not system:
        _emit_note_event(sim, project, author, row, noteable, "create")
    return row


async def insert_system_note(
    conn: Any, project_id: int, noteable_type: str, noteable_id: int, noteable_iid: int,
    author_id: int, body: str, stamp: str,
) -> None:  # fmt: skip
    """A system note written inside the caller's transaction with the caller's stamp (an
    issue edit and its "changed the description" note are one change, as in GitLab)."""
    await _insert(
        conn, {"id": project_id}, noteable_type, noteable_id, noteable_iid, author_id, body,
        stamp, system=True,
    )  # fmt: skip


async def _insert(
    conn: Any,
    project: Any,
    noteable_type: str,
    noteable_id: int,
    noteable_iid: int,
    author_id: int,
    body: str,
    stamp: str,
    *,
    system: bool = False,
    internal: bool = False,
    discussion_id: str | None = None,
    position: dict[str, Any] | None = None,
    note_type: str | None = None,
    resolvable: bool = False,
) -> sqlite3.Row:
    cur = await conn.execute(
        "INSERT INTO notes (project_id, noteable_type, noteable_id, noteable_iid, author_id,"
        " body, system, internal, type, discussion_id, position, resolvable, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        (
            project["id"],
            noteable_type,
            noteable_id,
            noteable_iid,
            author_id,
            body,
            int(system),
            int(internal),
            note_type,
            discussion_id or secrets.token_hex(20),
            json.dumps(position) if position is not None else None,
            int(resolvable),
            stamp,
            stamp,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return row  # type: ignore[no-any-return]


async def update_note(
    sim: Sim, project: sqlite3.Row, note: sqlite3.Row, body: str, editor: sqlite3.Row
) -> sqlite3.Row:
    noteable = await load_noteable(sim, project, note["noteable_type"], int(note["noteable_iid"]))
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "UPDATE notes SET body = ?, updated_at = ? WHERE id = ? RETURNING *",
            (body, later_than(note["updated_at"]), note["id"]),
        )
        row = await cur.fetchone()
        if noteable is not None:  # GitLab touches the noteable when a note is edited
            await _touch(conn, noteable)
    assert row is not None
    if noteable is not None and not row["system"]:
        _emit_note_event(sim, project, editor, row, noteable, "update")
    return row


async def _touch(conn: Any, noteable: Noteable) -> str:
    """Move the noteable's ``updated_at`` on (GitLab touches it when a note is posted,
    edited or deleted); returns the new stamp."""
    cur = await conn.execute(
        f"SELECT updated_at FROM {noteable.table} WHERE id = ?", (noteable.id,)
    )
    previous = await cur.fetchone()
    stamp = later_than(previous[0] if previous else None)
    await conn.execute(
        f"UPDATE {noteable.table} SET updated_at = ? WHERE id = ?", (stamp, noteable.id)
    )
    return stamp


async def set_resolved(sim: Sim, note_ids: list[int], resolver_id: int | None) -> None:
    """Resolve (``resolver_id`` given) or unresolve resolvable notes."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        for note_id in note_ids:
            await conn.execute(
                "UPDATE notes SET resolved = ?, resolved_by_id = ?, resolved_at = ?"
                " WHERE id = ? AND resolvable = 1",
                (
                    int(resolver_id is not None),
                    resolver_id,
                    stamp if resolver_id else None,
                    note_id,
                ),
            )


async def get_note(sim: Sim, note_id: int) -> sqlite3.Row | None:
    return await sim.store.fetchone("SELECT * FROM notes WHERE id = ?", (note_id,))


async def list_notes(sim: Sim, noteable_type: str, noteable_id: int) -> list[sqlite3.Row]:
    return await sim.store.fetchall(
        "SELECT * FROM notes WHERE noteable_type = ? AND noteable_id = ? ORDER BY id",
        (noteable_type, noteable_id),
    )


# ---------------------------------------------------------------- shapes


def _note_body(sim: Sim, row: sqlite3.Row, users: dict[int, sqlite3.Row]) -> dict[str, Any]:
    resolver = users.get(int(row["resolved_by_id"])) if row["resolved_by_id"] else None
    body: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "body": row["body"],
        "attachment": None,
        "author": user_json(sim, users[int(row["author_id"])]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "system": bool(row["system"]),
        "noteable_id": row["noteable_id"],
        "noteable_type": row["noteable_type"],
        "project_id": row["project_id"],
        "commit_id": None,
        "resolvable": bool(row["resolvable"]),
        "confidential": bool(row["internal"]),
        "internal": bool(row["internal"]),
        "imported": False,
        "imported_from": "none",
        "noteable_iid": row["noteable_iid"],
        "commands_changes": {},
    }
    if row["resolvable"]:
        body["resolved"] = bool(row["resolved"])
        body["resolved_by"] = user_json(sim, resolver) if resolver is not None else None
        body["resolved_at"] = row["resolved_at"]
    if row["position"] is not None:
        body["position"] = json.loads(row["position"])
    return body


async def notes_json(sim: Sim, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    ids = [int(r["author_id"]) for r in rows] + [
        int(r["resolved_by_id"]) for r in rows if r["resolved_by_id"]
    ]
    users = await users_by_ids(sim, ids)
    return [_note_body(sim, row, users) for row in rows]


async def note_json(sim: Sim, row: sqlite3.Row) -> dict[str, Any]:
    return (await notes_json(sim, [row]))[0]


def note_hook_attributes(
    sim: Sim, row: sqlite3.Row, noteable: Noteable, action: str
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "note": row["body"],
        "noteable_type": row["noteable_type"],
        "author_id": row["author_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "project_id": row["project_id"],
        "attachment": None,
        "line_code": None,
        "commit_id": "",
        "noteable_id": row["noteable_id"],
        "system": bool(row["system"]),
        "st_diff": None,
        "updated_by_id": None,
        "type": row["type"],
        "position": json.loads(row["position"]) if row["position"] else None,
        "original_position": json.loads(row["position"]) if row["position"] else None,
        "resolved_at": row["resolved_at"],
        "resolved_by_id": row["resolved_by_id"],
        "resolved_by_push": None,
        "discussion_id": row["discussion_id"],
        "internal": bool(row["internal"]),
        "confidential": bool(row["internal"]),
        "url": f"{noteable.web_url}#note_{row['id']}",
        "action": action,
        "description": row["body"],
    }


def _emit_note_event(
    sim: Sim,
    project: sqlite3.Row,
    user: sqlite3.Row,
    row: sqlite3.Row,
    noteable: Noteable,
    action: str,
) -> None:
    payload = note_payload(
        sim,
        project,
        user,
        note_hook_attributes(sim, row, noteable, action),
        noteable_key=noteable.hook_key,
        noteable_attributes=noteable.hook_attributes,
    )
    sim.events.emit(SimEvent("note", int(project["id"]), payload))


# ---------------------------------------------------------------- routes


_SORTS = {"asc": "ASC", "desc": "DESC"}
_ORDERS = {"created_at": "created_at", "updated_at": "updated_at"}


def _choice(params: Params, name: str, choices: dict[str, str], default: str) -> str:
    value = params.get_str(name, default) or default
    if value not in choices:
        fail(400, f"{name} does not have a valid value", key="error")
    return choices[value]


def register_noteable_routes(
    app: web.Application,
    kind_path: str,
    noteable_type: str,
    loader: NoteableLoader,
    *,
    comment_access: int = GUEST,
) -> None:
    _LOADERS[noteable_type] = loader

    async def noteable_of(
        request: web.Request, min_access: int = GUEST
    ) -> tuple[Sim, sqlite3.Row, Noteable]:
        sim = request.app[SIM_KEY]
        project = await load_project(request, min_access)
        noteable = await loader(sim, project, int(request.match_info["iid"]))
        if noteable is None:
            not_found()
        return sim, project, noteable

    async def note_of(request: web.Request) -> tuple[Sim, sqlite3.Row, sqlite3.Row]:
        sim, project, noteable = await noteable_of(request)
        note = await get_note(sim, int(request.match_info["note_id"]))
        if (
            note is None
            or note["noteable_type"] != noteable_type
            or note["noteable_id"] != noteable.id
        ):
            not_found("Note Not Found")
        return sim, project, note

    async def may_manage(sim: Sim, request: web.Request, note: sqlite3.Row) -> bool:
        user = current_user(request)
        if int(user["id"]) == int(note["author_id"]):
            return True
        return await access_level(sim, user, int(note["project_id"])) >= MAINTAINER

    async def list_route(request: web.Request) -> web.Response:
        sim, _, noteable = await noteable_of(request)
        params = await Params.of(request)
        direction = _choice(params, "sort", _SORTS, "desc")
        column = _choice(params, "order_by", _ORDERS, "created_at")
        rows = await sim.store.fetchall(
            f"SELECT * FROM notes WHERE noteable_type = ? AND noteable_id = ?"
            f" ORDER BY {column} {direction}, id {direction}",
            (noteable_type, noteable.id),
        )
        return paginate(request, await notes_json(sim, rows))

    async def create_route(request: web.Request) -> web.Response:
        sim, project, noteable = await noteable_of(request, comment_access)
        params = await Params.of(request)
        body = params.required("body")
        row = await create_note(
            sim,
            project,
            noteable_type,
            noteable.iid,
            current_user(request),
            body,
            internal=params.get_bool("internal") or params.get_bool("confidential"),
        )
        return created(await note_json(sim, row))

    async def get_route(request: web.Request) -> web.Response:
        sim, _, note = await note_of(request)
        return web.json_response(await note_json(sim, note))

    async def update_route(request: web.Request) -> web.Response:
        sim, project, note = await note_of(request)
        params = await Params.of(request)
        body = params.required("body")
        if note["system"] or not await may_manage(sim, request, note):
            forbidden()
        row = await update_note(sim, project, note, body, current_user(request))
        return web.json_response(await note_json(sim, row))

    async def delete_route(request: web.Request) -> web.Response:
        sim, project, note = await note_of(request)
        if not await may_manage(sim, request, note):
            forbidden()
        noteable = await load_noteable(
            sim, project, note["noteable_type"], int(note["noteable_iid"])
        )
        async with sim.store.write() as conn:
            await conn.execute("DELETE FROM notes WHERE id = ?", (note["id"],))
            if noteable is not None:  # as on an edit, GitLab touches the noteable
                await _touch(conn, noteable)
        return no_content()

    base = f"{API}/projects/{{id}}/{kind_path}/{{iid:\\d+}}/notes"
    app.router.add_get(base, list_route)
    app.router.add_post(base, create_route)
    app.router.add_get(f"{base}/{{note_id:\\d+}}", get_route)
    app.router.add_put(f"{base}/{{note_id:\\d+}}", update_route)
    app.router.add_delete(f"{base}/{{note_id:\\d+}}", delete_route)


def setup(app: web.Application, sim: Sim) -> None:
    """Nothing to add: each noteable module registers its own routes (see the docstring)."""
