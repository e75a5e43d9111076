"""Notes (comments) on any noteable: issues here, merge requests in their own module.

Every note, whatever it is attached to, lives in ONE ``notes`` table whose ids come from a
single increasing sequence (``AUTOINCREMENT`` under the store's write lock), as GitLab's
note ids do: crewline's claim protocol relies on "the lowest note id wins".

The notes' storage is here; what a note hangs on and the shared helpers are in
:mod:`sim.issues.noteables`, the JSON and hook shapes in :mod:`sim.issues.note_json`, the
routes in :mod:`sim.issues.note_routes`.

Public API (for the merge-request module and tests)
---------------------------------------------------
``Noteable(type, id, iid, table, web_url, hook_key, hook_attributes)`` (``noteables``)
    What a note hangs on: ``type`` "Issue" | "MergeRequest", the global ``id`` and ``iid``,
    the ``table`` whose ``updated_at`` a new note touches (GitLab touches the noteable),
    its ``web_url``, and the key + object GitLab puts in Note Hook payloads
    (``"issue"``/``"merge_request"``).
``NoteableLoader = Callable[[Sim, project_row, iid], Awaitable[Noteable | None]]``
``register_noteable_routes(app, kind_path, noteable_type, loader, *, comment_access=GUEST)``
(``note_routes``)
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
``await note_json(sim, row)`` / ``await notes_json(sim, rows)``: GitLab's note shape
(``note_json``, like the next one).
``note_hook_attributes(sim, row, noteable, action)``: a Note Hook's ``object_attributes``.
``later_than(previous_iso) -> str``: now, or 1 ms after ``previous`` if the clock has not moved,
    so every change strictly advances ``updated_at``.
``users_by_ids(sim, ids) -> dict[int, Row]`` (``noteables``, like ``later_than``).

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
from typing import Any, TypedDict, Unpack

from aiohttp import web

from sim.core.base import (
    Sim,
)
from sim.core.events import SimEvent
from sim.core.hook_payloads import note_payload
from sim.core.http import (
    now_iso,
)
from sim.issues.note_json import note_hook_attributes
from sim.issues.noteables import (
    Noteable,
    later_than,
    load_noteable,
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


# ---------------------------------------------------------------- storage


class NoteOptions(TypedDict, total=False):
    """What a new note may be besides its text, for :func:`create_note` and the insert."""

    system: bool
    internal: bool
    discussion_id: str | None
    position: dict[str, Any] | None
    note_type: str | None
    resolvable: bool


async def create_note(
    sim: Sim,
    project: sqlite3.Row,
    noteable_type: str,
    noteable_iid: int,
    author: sqlite3.Row,
    body: str,
    *,
    emit: bool = True,
    **options: Unpack[NoteOptions],
) -> sqlite3.Row:
    noteable = await load_noteable(sim, project, noteable_type, noteable_iid)
    if noteable is None:
        raise LookupError(f"{noteable_type} !{noteable_iid} not found in project {project['id']}")
    async with sim.store.write() as conn:
        stamp = await touch_noteable(conn, noteable)  # the new note carries the same stamp
        row = await _insert(
            conn, project, noteable.type, noteable.id, noteable.iid, int(author["id"]), body,
            stamp, **options,
        )  # fmt: skip
    if emit and not options.get("system", False):
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
    **options: Unpack[NoteOptions],
) -> sqlite3.Row:
    position = options.get("position")
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
            int(options.get("system", False)),
            int(options.get("internal", False)),
            options.get("note_type"),
            options.get("discussion_id") or secrets.token_hex(20),
            json.dumps(position) if position is not None else None,
            int(options.get("resolvable", False)),
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
            await touch_noteable(conn, noteable)
    assert row is not None
    if noteable is not None and not row["system"]:
        _emit_note_event(sim, project, editor, row, noteable, "update")
    return row


async def touch_noteable(conn: Any, noteable: Noteable) -> str:
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


def setup(app: web.Application, sim: Sim) -> None:
    """Nothing to add: each noteable module registers its own routes (see the docstring)."""
