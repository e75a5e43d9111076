"""The simulator's account and project endpoints: ``/version``, ``/user`` (and its own token),
``/users``, ``/projects`` and their members."""

from __future__ import annotations

import hashlib

from aiohttp import web

from sim.core.base import (
    ACCESS_NAMES,
    API,
    MAINTAINER,
    OWNER,
    SIM_KEY,
    Sim,
    access_level,
    create_project,
    current_user,
    load_project,
    project_by_ref,
    project_json,
    token_of,
    user_by_id,
    user_json,
)
from sim.core.http import Params, created, fail, not_found, paginate


async def get_version(request: web.Request) -> web.Response:
    return web.json_response(
        {"version": "17.5.0-sim", "revision": "crewline", "kas": {"enabled": False}}
    )


async def get_current_user(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    user = current_user(request)
    body = user_json(sim, user)
    body.update(
        {
            "email": user["email"],
            "is_admin": bool(user["is_admin"]),
            "created_at": user["created_at"],
        }
    )
    return web.json_response(body)


async def list_users(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    params = await Params.of(request)
    username = params.get_str("username")
    if username is not None:
        rows = await sim.store.fetchall("SELECT * FROM users WHERE username = ?", (username,))
    else:
        rows = await sim.store.fetchall("SELECT * FROM users ORDER BY id")
    return paginate(request, [user_json(sim, row) for row in rows])


async def get_user(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    row = await user_by_id(sim, int(request.match_info["user_id"]))
    if row is None:
        not_found("User Not Found")
    return web.json_response(user_json(sim, row))


async def list_projects(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    user = current_user(request)
    rows = await sim.store.fetchall("SELECT * FROM projects ORDER BY id DESC")
    visible = []
    for row in rows:
        level = await access_level(sim, user, int(row["id"]))
        if level:
            visible.append(project_json(sim, row, level))
    return paginate(request, visible)


async def get_project(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    level = await access_level(sim, current_user(request), int(project["id"]))
    return web.json_response(project_json(sim, project, level))


async def create_project_route(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    params = await Params.of(request)
    user = current_user(request)
    path = params.get_str("path") or params.required("name")
    namespace = params.get_str("namespace_path") or user["username"]
    if await project_by_ref(sim, f"{namespace}/{path}") is not None:
        fail(400, {"name": ["has already been taken"], "path": ["has already been taken"]})
    project_id = await create_project(
        sim,
        f"{namespace}/{path}",
        members={int(user["id"]): OWNER},
        default_branch=params.get_str("default_branch", "main") or "main",
    )
    row = await project_by_ref(sim, str(project_id))
    assert row is not None
    return created(project_json(sim, row, OWNER))


async def list_members(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    rows = await sim.store.fetchall(
        "SELECT users.*, members.access_level FROM members JOIN users ON users.id = members.user_id"
        " WHERE members.project_id = ? ORDER BY users.id",
        (project["id"],),
    )
    return paginate(
        request, [{**user_json(sim, r), "access_level": r["access_level"]} for r in rows]
    )


async def get_member(request: web.Request) -> web.Response:
    """``/members/all/:user_id``: the effective access level, admins included (as Owner)."""
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    user = await user_by_id(sim, int(request.match_info["user_id"]))
    if user is None:
        not_found()
    level = await access_level(sim, user, int(project["id"]))
    if not level:
        not_found()
    return web.json_response({**user_json(sim, user), "access_level": level})


async def add_member(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    params = await Params.of(request)
    user_id = params.get_int("user_id")
    level = params.get_int("access_level")
    if user_id is None:
        fail(400, "user_id is missing", key="error")
    if level not in ACCESS_NAMES:
        fail(400, "access_level does not have a valid value", key="error")
    user = await user_by_id(sim, user_id)
    if user is None:
        not_found("User Not Found")
    async with sim.store.write() as conn:
        await conn.execute(
            "INSERT OR REPLACE INTO members (project_id, user_id, access_level) VALUES (?, ?, ?)",
            (project["id"], user_id, level),
        )
    return created({**user_json(sim, user), "access_level": level})


async def get_own_token(request: web.Request) -> web.Response:
    """``GET /personal_access_tokens/self`` (GitLab 15.5+): the token that authenticated."""
    token = token_of(request) or ""
    row = await request.app[SIM_KEY].store.fetchone(
        "SELECT name, user_id FROM tokens WHERE token = ?", (token,)
    )
    assert row is not None  # the auth middleware let it in
    return web.json_response(
        {
            "id": int(hashlib.sha256(token.encode()).hexdigest()[:8], 16),
            "name": row["name"],
            "revoked": False,
            "active": True,
            "scopes": ["api"],
            "user_id": row["user_id"],
            "created_at": "2026-01-01T00:00:00.000Z",
            "expires_at": None,
            "last_used_at": None,
        }
    )


async def revoke_own_token(request: web.Request) -> web.Response:
    """``DELETE /personal_access_tokens/self``: revoke the token used; it is refused from now."""
    token = token_of(request) or ""
    async with request.app[SIM_KEY].store.write() as conn:
        await conn.execute("DELETE FROM tokens WHERE token = ?", (token,))
    return web.Response(status=204)


def setup(app: web.Application, sim: Sim) -> None:
    r = app.router
    r.add_get(f"{API}/personal_access_tokens/self", get_own_token)
    r.add_delete(f"{API}/personal_access_tokens/self", revoke_own_token)
    r.add_get(f"{API}/version", get_version)
    r.add_get(f"{API}/user", get_current_user)
    r.add_get(f"{API}/users", list_users)
    r.add_get(f"{API}/users/{{user_id:\\d+}}", get_user)
    r.add_get(f"{API}/projects", list_projects)
    r.add_post(f"{API}/projects", create_project_route)
    r.add_get(f"{API}/projects/{{id}}", get_project)
    r.add_get(f"{API}/projects/{{id}}/members", list_members)
    r.add_get(f"{API}/projects/{{id}}/members/all/{{user_id:\\d+}}", get_member)
    r.add_get(f"{API}/projects/{{id}}/members/{{user_id:\\d+}}", get_member)
    r.add_post(f"{API}/projects/{{id}}/members", add_member)
