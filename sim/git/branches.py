"""The branches API: list (with ``search``), get, create from a ref, delete."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.base import (
    API,
    DEVELOPER,
    MAINTAINER,
    REPORTER,
    SIM_KEY,
    Sim,
    access_level,
    current_user,
    load_project,
)
from sim.core.http import Params, created, fail, no_content, not_found, paginate
from sim.git.errors import GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA
from sim.git.protected_branches import level_allows, rules_for
from sim.git.repos import GitRepos
from sim.git.repository import emit_push, repos_of

BRANCH_COMMIT_FIELDS = (
    "id", "short_id", "created_at", "parent_ids", "title", "message", "author_name",
    "author_email", "authored_date", "committer_name", "committer_email", "committed_date",
    "trailers", "extended_trailers", "web_url",
)  # fmt: skip


async def branch_json(
    request: web.Request, project: sqlite3.Row, name: str, sha: str
) -> dict[str, Any]:
    sim = request.app[SIM_KEY]
    repos = repos_of(request)
    user = current_user(request)
    level = await access_level(sim, user, int(project["id"]))
    rules = await rules_for(sim, int(project["id"]), name)
    default = name == project["default_branch"]
    info = await repos.commit_info(project, sha)
    pushers = [int(rule["push_access_level"]) for rule in rules]
    mergers = [int(rule["merge_access_level"]) for rule in rules]
    return {
        "name": name,
        "merged": not default and await _merged(repos, project, sha),
        "protected": bool(rules),
        "default": default,
        "developers_can_push": not rules or DEVELOPER in pushers,
        "developers_can_merge": not rules or DEVELOPER in mergers,
        "can_push": level >= DEVELOPER
        and (
            not rules
            or any(level_allows(level, n, is_admin=bool(user["is_admin"])) for n in pushers)
        ),
        "web_url": f"{repos.web_url(project)}/-/tree/{name}",
        "commit": {key: info[key] for key in BRANCH_COMMIT_FIELDS},
    }


async def _merged(repos: GitRepos, project: sqlite3.Row, sha: str) -> bool:
    default = str(project["default_branch"])
    return await repos.resolve(project, default) is not None and await repos.is_ancestor(
        project, sha, default
    )


def _matches(name: str, search: str) -> bool:
    """GitLab's branch search: ``^prefix``, ``suffix$`` or a substring."""
    if search.startswith("^") and search.endswith("$") and len(search) > 1:
        return name == search[1:-1]
    if search.startswith("^"):
        return name.startswith(search[1:])
    if search.endswith("$"):
        return name.endswith(search[:-1])
    return search in name


async def list_branches(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    search = params.get_str("search") or ""
    branches = await repos_of(request).branches(project)
    names = sorted(name for name in branches if _matches(name, search))
    return paginate(request, [await branch_json(request, project, n, branches[n]) for n in names])


async def _existing_branch(request: web.Request, project: sqlite3.Row) -> tuple[str, str]:
    name = unquote(request.match_info["branch"])
    sha = (await repos_of(request).branches(project)).get(name)
    if sha is None:
        not_found("Branch Not Found")
    return name, sha


async def get_branch(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    name, sha = await _existing_branch(request, project)
    return web.json_response(await branch_json(request, project, name, sha))


async def create_branch(request: web.Request) -> web.Response:
    project = await load_project(request, DEVELOPER)
    params = await Params.of(request)
    name, ref = params.required("branch"), params.required("ref")
    repos = repos_of(request)
    if await repos.resolve(project, ref) is None:
        fail(400, f"Invalid reference name: {ref}")
    try:
        sha = await repos.create_branch(project, name, ref)
    except GitStaleRef:
        fail(400, "Branch already exists")
    except GitError:
        fail(400, "Branch name is invalid")
    await emit_push(
        request.app, project, current_user(request), f"refs/heads/{name}", ZERO_SHA, sha
    )
    return created(await branch_json(request, project, name, sha))


async def delete_branch(request: web.Request) -> web.Response:
    project = await load_project(request, DEVELOPER)
    sim = request.app[SIM_KEY]
    name, sha = await _existing_branch(request, project)
    if name == project["default_branch"]:
        fail(405, "The default branch of a project cannot be deleted.")
    level = await access_level(sim, current_user(request), int(project["id"]))
    if await rules_for(sim, int(project["id"]), name) and level < MAINTAINER:
        fail(403, "403 Forbidden")
    try:
        await repos_of(request).delete_branch(project, name)
    except GitError:
        not_found("Branch Not Found")
    await emit_push(
        request.app, project, current_user(request), f"refs/heads/{name}", sha, ZERO_SHA
    )
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/repository/branches"
    app.router.add_get(base, list_branches)
    app.router.add_post(base, create_branch)
    app.router.add_get(f"{base}/{{branch}}", get_branch)
    app.router.add_delete(f"{base}/{{branch}}", delete_branch)
