"""Protected branches: the table, who may push or merge, and the ``/protected_branches``
API. Names may use GitLab's ``*`` wildcard; when several rules match a branch, the most
permissive one decides, as on GitLab."""

from __future__ import annotations

import re
import sqlite3
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.base import API, DEVELOPER, GUEST, MAINTAINER, SIM_KEY, Sim, load_project
from sim.core.http import Params, created, fail, no_content, not_found, paginate
from sim.git.hooks import PushRule, wildcard_regex

NO_ONE, ADMIN = 0, 60
LEVEL_NAMES = {
    NO_ONE: "No one",
    DEVELOPER: "Developers + Maintainers",
    MAINTAINER: "Maintainers",
    ADMIN: "Admins",
}
_PERMISSIVENESS = {DEVELOPER: 0, MAINTAINER: 1, ADMIN: 2, NO_ONE: 3}

SCHEMA = """
CREATE TABLE IF NOT EXISTS protected_branches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    push_access_level INTEGER NOT NULL,
    merge_access_level INTEGER NOT NULL,
    allow_force_push INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, name)
)
"""


# ---------------------------------------------------------------- rules


def level_allows(level: int, required: int, *, is_admin: bool = False) -> bool:
    """Does a member at ``level`` satisfy a protected-branch access level?"""
    if required == NO_ONE:
        return False
    if required == ADMIN:
        return is_admin
    return level >= required


async def rules_for(sim: Sim, project_id: int, branch: str) -> list[sqlite3.Row]:
    rows = await sim.store.fetchall(
        "SELECT * FROM protected_branches WHERE project_id = ? ORDER BY id", (project_id,)
    )
    return [row for row in rows if re.fullmatch(wildcard_regex(row["name"]), branch)]


def _most_permissive(levels: list[int]) -> int | None:
    return min(levels, key=lambda level: _PERMISSIVENESS.get(level, 1)) if levels else None


async def push_access_level(sim: Sim, project_id: int, branch: str) -> int | None:
    """The push level ``branch`` needs, or None when it is not protected."""
    rows = await rules_for(sim, project_id, branch)
    return _most_permissive([int(row["push_access_level"]) for row in rows])


async def merge_access_level(sim: Sim, project_id: int, branch: str) -> int | None:
    """The merge level ``branch`` needs, or None when it is not protected."""
    rows = await rules_for(sim, project_id, branch)
    return _most_permissive([int(row["merge_access_level"]) for row in rows])


async def can_push(sim: Sim, project_id: int, branch: str, level: int, *, is_admin: bool) -> bool:
    """May a member at ``level`` (Developer at least) push to ``branch``?"""
    if level < DEVELOPER:
        return False
    required = await push_access_level(sim, project_id, branch)
    return required is None or level_allows(level, required, is_admin=is_admin)


async def push_rules(sim: Sim, project_id: int, level: int, *, is_admin: bool) -> list[PushRule]:
    """Every protection rule of the project as it applies to a pusher at ``level``."""
    rows = await sim.store.fetchall(
        "SELECT * FROM protected_branches WHERE project_id = ? ORDER BY id", (project_id,)
    )
    return [
        PushRule(
            pattern=row["name"],
            can_push=level_allows(level, int(row["push_access_level"]), is_admin=is_admin),
            allow_force_push=bool(row["allow_force_push"]),
        )
        for row in rows
    ]


async def protect(
    sim: Sim,
    project_id: int,
    name: str,
    *,
    push_level: int = MAINTAINER,
    merge_level: int = MAINTAINER,
    allow_force_push: bool = False,
) -> sqlite3.Row | None:
    """Protect ``name``; None when it already is (nothing changes)."""
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "INSERT OR IGNORE INTO protected_branches"
            " (project_id, name, push_access_level, merge_access_level, allow_force_push)"
            " VALUES (?, ?, ?, ?, ?)",
            (project_id, name, push_level, merge_level, int(allow_force_push)),
        )
        inserted = cur.rowcount == 1
    return await _find(sim, project_id, name) if inserted else None


async def _find(sim: Sim, project_id: int, name: str) -> sqlite3.Row | None:
    return await sim.store.fetchone(
        "SELECT * FROM protected_branches WHERE project_id = ? AND name = ?", (project_id, name)
    )


# ---------------------------------------------------------------- API


def _access_json(row: sqlite3.Row, column: str, offset: int) -> list[dict[str, Any]]:
    level = int(row[column])
    return [
        {
            "id": int(row["id"]) * 3 + offset,
            "access_level": level,
            "access_level_description": LEVEL_NAMES.get(level, str(level)),
            "user_id": None,
            "group_id": None,
        }
    ]


def protected_branch_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "push_access_levels": _access_json(row, "push_access_level", 0),
        "merge_access_levels": _access_json(row, "merge_access_level", 1),
        "unprotect_access_levels": [],
        "allow_force_push": bool(row["allow_force_push"]),
        "code_owner_approval_required": False,
    }


def _level_param(params: Params, name: str, default: int) -> int:
    level = params.get_int(name, default)
    assert level is not None
    if level not in LEVEL_NAMES:
        fail(400, f"{name} does not have a valid value", key="error")
    return level


async def _existing(request: web.Request, project: sqlite3.Row) -> sqlite3.Row:
    name = unquote(request.match_info["name"])
    row = await _find(request.app[SIM_KEY], int(project["id"]), name)
    if row is None:
        not_found()
    return row


async def list_protected(request: web.Request) -> web.Response:
    project = await load_project(request, GUEST)
    params = await Params.of(request)
    search = params.get_str("search") or ""
    rows = await request.app[SIM_KEY].store.fetchall(
        "SELECT * FROM protected_branches WHERE project_id = ? ORDER BY id", (project["id"],)
    )
    return paginate(request, [protected_branch_json(r) for r in rows if search in r["name"]])


async def get_protected(request: web.Request) -> web.Response:
    project = await load_project(request, GUEST)
    return web.json_response(protected_branch_json(await _existing(request, project)))


async def protect_branch(request: web.Request) -> web.Response:
    project = await load_project(request, MAINTAINER)
    params = await Params.of(request)
    name = params.required("name")
    row = await protect(
        request.app[SIM_KEY],
        int(project["id"]),
        name,
        push_level=_level_param(params, "push_access_level", MAINTAINER),
        merge_level=_level_param(params, "merge_access_level", MAINTAINER),
        allow_force_push=params.get_bool("allow_force_push"),
    )
    if row is None:
        fail(409, f"Protected branch '{name}' already exists")
    return created(protected_branch_json(row))


async def update_protected(request: web.Request) -> web.Response:
    project = await load_project(request, MAINTAINER)
    row = await _existing(request, project)
    params = await Params.of(request)
    values = {
        "allow_force_push": int(params.get_bool("allow_force_push", bool(row["allow_force_push"]))),
        "push_access_level": _level_param(
            params, "push_access_level", int(row["push_access_level"])
        ),
        "merge_access_level": _level_param(
            params, "merge_access_level", int(row["merge_access_level"])
        ),
    }
    async with request.app[SIM_KEY].store.write() as conn:
        await conn.execute(
            "UPDATE protected_branches SET allow_force_push = ?, push_access_level = ?,"
            " merge_access_level = ? WHERE id = ?",
            (*values.values(), row["id"]),
        )
    updated = await _find(request.app[SIM_KEY], int(project["id"]), row["name"])
    assert updated is not None
    return web.json_response(protected_branch_json(updated))


async def unprotect_branch(request: web.Request) -> web.Response:
    project = await load_project(request, MAINTAINER)
    row = await _existing(request, project)
    async with request.app[SIM_KEY].store.write() as conn:
        await conn.execute("DELETE FROM protected_branches WHERE id = ?", (row["id"],))
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/protected_branches"
    app.router.add_get(base, list_protected)
    app.router.add_post(base, protect_branch)
    app.router.add_get(f"{base}/{{name}}", get_protected)
    app.router.add_patch(f"{base}/{{name}}", update_protected)
    app.router.add_delete(f"{base}/{{name}}", unprotect_branch)
