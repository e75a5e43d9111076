"""Merge-request discussions (``/merge_requests/:iid/discussions``) and the MR notes API.

Notes live in the shared table of :mod:`sim.issues.notes` (one id sequence with issue
notes). A discussion is the set of notes sharing a 40-hex ``discussion_id``. Threads
started here are resolvable: ``DiffNote`` when they carry a ``position`` on the diff,
``DiscussionNote`` otherwise. A plain comment (``POST /notes``) is an individual note and
not resolvable, as on GitLab.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import DEVELOPER, GUEST, MAINTAINER, SIM_KEY, Sim, access_level, current_user
from sim.core.http import Params, created, fail, forbidden, no_content, not_found, paginate
from sim.issues.note_json import note_json, notes_json
from sim.issues.note_routes import register_noteable_routes
from sim.issues.noteables import Noteable
from sim.issues.notes import create_note, get_note, list_notes, set_resolved, update_note
from sim.merge_requests.hooks import mr_hook_attributes
from sim.merge_requests.records import load_merge_request, mr_by_iid
from sim.merge_requests.views import mr_web_url

POSITION_TYPES = ("text", "image", "file")
_POSITION_SHAS = ("base_sha", "start_sha", "head_sha")

# The notes module keeps one loader per noteable type for the whole process; it gets the
# simulator, and each simulator's app (git access) is found here.
_APPS: dict[int, web.Application] = {}


async def _load_mr_noteable(sim: Sim, project: sqlite3.Row, iid: int) -> Noteable | None:
    mr = await mr_by_iid(sim, int(project["id"]), iid)
    if mr is None:
        return None
    app = _APPS[id(sim)]
    return Noteable(
        type="MergeRequest",
        id=int(mr["id"]),
        iid=int(mr["iid"]),
        table="merge_requests",
        web_url=mr_web_url(sim, project, iid),
        hook_key="merge_request",
        hook_attributes=await mr_hook_attributes(app, project, mr),
    )


# ---------------------------------------------------------------- shapes


def group_discussions(rows: list[sqlite3.Row]) -> dict[str, list[sqlite3.Row]]:
    """Notes by discussion, discussions in the order of their first note."""
    groups: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        groups.setdefault(str(row["discussion_id"]), []).append(row)
    return groups


async def discussion_json(sim: Sim, discussion_id: str, rows: list[sqlite3.Row]) -> dict[str, Any]:
    return {
        "id": discussion_id,
        "individual_note": len(rows) == 1 and rows[0]["type"] is None,
        "notes": await notes_json(sim, rows),
    }


def normalise_position(raw: Any) -> dict[str, Any]:
    """A diff position as GitLab stores it; 400 naming the first missing or bad field."""
    if not isinstance(raw, dict):
        fail(400, "position is invalid", key="error")
    position_type = raw.get("position_type")
    if position_type not in POSITION_TYPES:
        fail(400, "position[position_type] does not have a valid value", key="error")
    for name in _POSITION_SHAS:
        if not raw.get(name):
            fail(400, f"position[{name}] is missing", key="error")
    new_path, old_path = raw.get("new_path"), raw.get("old_path")
    if not new_path and not old_path:
        fail(400, "position[new_path] is missing", key="error")
    lines: dict[str, int | None] = {}
    for name in ("new_line", "old_line"):
        value = raw.get(name)
        try:
            lines[name] = int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            fail(400, f"position[{name}] is invalid", key="error")
    if position_type == "text" and lines["new_line"] is None and lines["old_line"] is None:
        fail(400, '400 Bad request - Note {:line_code=>["can\'t be blank"]}')
    return {
        "base_sha": raw["base_sha"],
        "start_sha": raw["start_sha"],
        "head_sha": raw["head_sha"],
        "old_path": old_path or new_path,
        "new_path": new_path or old_path,
        "position_type": position_type,
        "old_line": lines["old_line"],
        "new_line": lines["new_line"],
        "line_range": raw.get("line_range"),
    }


# ---------------------------------------------------------------- routes


async def _discussion(
    request: web.Request,
) -> tuple[Sim, sqlite3.Row, sqlite3.Row, list[sqlite3.Row]]:
    """The project, MR and notes of ``{discussion_id}``: 404 when it is not on this MR."""
    sim = request.app[SIM_KEY]
    project, mr = await load_merge_request(request)
    discussion_id = request.match_info["discussion_id"]
    rows = [
        row
        for row in await list_notes(sim, "MergeRequest", int(mr["id"]))
        if row["discussion_id"] == discussion_id
    ]
    if not rows:
        not_found("Discussion Not Found")
    return sim, project, mr, rows


async def list_discussions(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _, mr = await load_merge_request(request)
    groups = group_discussions(await list_notes(sim, "MergeRequest", int(mr["id"])))
    body = [await discussion_json(sim, key, rows) for key, rows in groups.items()]
    return paginate(request, body)


async def get_discussion(request: web.Request) -> web.Response:
    sim, _, _, rows = await _discussion(request)
    return web.json_response(await discussion_json(sim, str(rows[0]["discussion_id"]), rows))


async def create_discussion(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project, mr = await load_merge_request(request, GUEST)
    params = await Params.of(request)
    body = params.required("body")
    raw_position = params.raw("position")
    position = normalise_position(raw_position) if raw_position is not None else None
    row = await create_note(
        sim,
        project,
        "MergeRequest",
        int(mr["iid"]),
        current_user(request),
        body,
        position=position,
        note_type="DiffNote" if position is not None else "DiscussionNote",
        resolvable=True,
    )
    return created(await discussion_json(sim, str(row["discussion_id"]), [row]))


async def reply(request: web.Request) -> web.Response:
    sim, project, mr, rows = await _discussion(request)
    params = await Params.of(request)
    body = params.required("body")
    first = rows[0]
    row = await create_note(
        sim,
        project,
        "MergeRequest",
        int(mr["iid"]),
        current_user(request),
        body,
        discussion_id=str(first["discussion_id"]),
        position=_position_of(first),
        note_type=first["type"] or "DiscussionNote",
        resolvable=bool(first["resolvable"]),
    )
    return created(await note_json(sim, row))


def _position_of(row: sqlite3.Row) -> dict[str, Any] | None:
    position: dict[str, Any] | None = json.loads(row["position"]) if row["position"] else None
    return position


async def _may_resolve(sim: Sim, request: web.Request, mr: sqlite3.Row) -> bool:
    """GitLab lets the MR author and Developers+ resolve threads."""
    user = current_user(request)
    if int(user["id"]) == int(mr["author_id"]):
        return True
    return await access_level(sim, user, int(mr["project_id"])) >= DEVELOPER


async def _resolve(
    sim: Sim, request: web.Request, mr: sqlite3.Row, rows: list[sqlite3.Row], resolved: bool
) -> None:
    if not any(row["resolvable"] for row in rows):
        fail(400, "400 Bad request - this discussion is not resolvable")
    if not await _may_resolve(sim, request, mr):
        forbidden()
    resolver = int(current_user(request)["id"]) if resolved else None
    await set_resolved(sim, [int(row["id"]) for row in rows], resolver)


async def resolve_discussion(request: web.Request) -> web.Response:
    sim, _, mr, rows = await _discussion(request)
    params = await Params.of(request)
    if not params.has("resolved"):
        fail(400, "resolved is missing", key="error")
    await _resolve(sim, request, mr, rows, params.get_bool("resolved"))
    _, _, _, rows = await _discussion(request)
    return web.json_response(await discussion_json(sim, str(rows[0]["discussion_id"]), rows))


def _note_in(rows: list[sqlite3.Row], request: web.Request) -> sqlite3.Row:
    note_id = int(request.match_info["note_id"])
    for row in rows:
        if int(row["id"]) == note_id:
            return row
    not_found("Note Not Found")


async def get_discussion_note(request: web.Request) -> web.Response:
    sim, _, _, rows = await _discussion(request)
    return web.json_response(await note_json(sim, _note_in(rows, request)))


async def update_discussion_note(request: web.Request) -> web.Response:
    """``body`` edits the note (author or Maintainer+); ``resolved`` resolves its thread."""
    sim, project, mr, rows = await _discussion(request)
    note = _note_in(rows, request)
    params = await Params.of(request)
    if params.has("body") == params.has("resolved"):
        fail(
            400, "body, resolved are mutually exclusive, exactly one must be provided", key="error"
        )
    if params.has("resolved"):
        await _resolve(sim, request, mr, rows, params.get_bool("resolved"))
        updated = await get_note(sim, int(note["id"]))
        assert updated is not None
        return web.json_response(await note_json(sim, updated))
    body = params.required("body")
    user = current_user(request)
    is_author = int(user["id"]) == int(note["author_id"])
    if note["system"] or not (
        is_author or await access_level(sim, user, int(project["id"])) >= MAINTAINER
    ):
        forbidden()
    return web.json_response(
        await note_json(sim, await update_note(sim, project, note, body, user))
    )


async def delete_discussion_note(request: web.Request) -> web.Response:
    sim, project, _, rows = await _discussion(request)
    note = _note_in(rows, request)
    user = current_user(request)
    if int(user["id"]) != int(note["author_id"]) and (
        await access_level(sim, user, int(project["id"])) < MAINTAINER
    ):
        forbidden()
    async with sim.store.write() as conn:
        await conn.execute("DELETE FROM notes WHERE id = ?", (note["id"],))
    return no_content()


def setup_routes(app: web.Application, base: str) -> None:
    sim = app[SIM_KEY]
    _APPS[id(sim)] = app

    async def forget(_: web.Application) -> None:
        _APPS.pop(id(sim), None)

    app.on_cleanup.append(forget)
    register_noteable_routes(app, "merge_requests", "MergeRequest", _load_mr_noteable)
    discussions = f"{base}/{{iid}}/discussions"
    one = f"{discussions}/{{discussion_id:[0-9a-f]{{40}}}}"
    r = app.router
    r.add_get(discussions, list_discussions)
    r.add_post(discussions, create_discussion)
    r.add_get(one, get_discussion)
    r.add_put(one, resolve_discussion)
    r.add_post(f"{one}/notes", reply)
    r.add_get(f"{one}/notes/{{note_id:\\d+}}", get_discussion_note)
    r.add_put(f"{one}/notes/{{note_id:\\d+}}", update_discussion_note)
    r.add_delete(f"{one}/notes/{{note_id:\\d+}}", delete_discussion_note)
