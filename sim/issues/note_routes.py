"""The REST routes of notes on any noteable: list, create, get, edit and delete under
``/projects/:id/<kind>/:iid/notes``."""

from __future__ import annotations

import sqlite3

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
)
from sim.core.http import (
    Params,
    created,
    fail,
    forbidden,
    no_content,
    not_found,
    paginate,
)
from sim.issues.note_json import note_json, notes_json
from sim.issues.noteables import (
    LOADERS,
    Noteable,
    NoteableLoader,
    load_noteable,
)
from sim.issues.notes import create_note, get_note, touch_noteable, update_note

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
    LOADERS[noteable_type] = loader

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
                await touch_noteable(conn, noteable)
        return no_content()

    base = f"{API}/projects/{{id}}/{kind_path}/{{iid:\\d+}}/notes"
    app.router.add_get(base, list_route)
    app.router.add_post(base, create_route)
    app.router.add_get(f"{base}/{{note_id:\\d+}}", get_route)
    app.router.add_put(f"{base}/{{note_id:\\d+}}", update_route)
    app.router.add_delete(f"{base}/{{note_id:\\d+}}", delete_route)
