"""The commits API (create from actions, get, list, diff) and the file-level writes
(``POST/PUT/DELETE /repository/files/:path``), which are single-action commits. Every
write is refused on a branch the user may not push to, and announced as a ``push``."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.base import (
    API,
    DEVELOPER,
    REPORTER,
    SIM_KEY,
    Sim,
    access_level,
    current_user,
    load_project,
)
from sim.core.http import Params, created, fail, no_content, paginate
from sim.git.errors import GitActionError, GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA
from sim.git.protected_branches import can_push
from sim.git.repos import run_git
from sim.git.repository import emit_push, repos_of, resolve_or_404

SCHEMA = ""


async def commit_as_user(
    request: web.Request,
    project: sqlite3.Row,
    params: Params,
    actions: list[dict[str, Any]],
) -> str:
    """Commit ``actions`` to ``params['branch']`` as the requesting user, with GitLab's
    checks and errors, and announce the push; returns the new commit id."""
    sim = request.app[SIM_KEY]
    user = current_user(request)
    branch = params.required("branch")
    message = params.required("commit_message")
    level = await access_level(sim, user, int(project["id"]))
    if not await can_push(sim, int(project["id"]), branch, level, is_admin=bool(user["is_admin"])):
        fail(403, "You are not allowed to push into this branch")
    repos = repos_of(request)
    before = (await repos.branches(project)).get(branch, ZERO_SHA)
    start = params.get_str("start_sha") or params.get_str("start_branch")
    if before == ZERO_SHA and start is not None and await repos.resolve(project, start) is None:
        fail(400, f"Invalid reference name: {start}")
    try:
        sha = await repos.commit(
            project,
            branch=branch,
            message=message,
            actions=actions,
            author_name=params.get_str("author_name") or str(user["name"]),
            author_email=params.get_str("author_email") or str(user["email"]),
            start_branch=start if before == ZERO_SHA else None,
            expected_sha=None if before == ZERO_SHA else before,
        )
    except GitStaleRef as error:
        fail(409, f"Could not update {branch}: {error}")
    except GitActionError as error:
        fail(400, str(error))
    await emit_push(request.app, project, user, f"refs/heads/{branch}", before, sha)
    return sha


async def commit_stats(request: web.Request, project: sqlite3.Row, sha: str) -> dict[str, int]:
    repo = await repos_of(request).ensure(project)
    _, out = await run_git(
        "diff-tree", "--numstat", "--root", "-r", "--no-commit-id", "-m", "--first-parent", sha,
        git_dir=repo,
    )  # fmt: skip
    additions = deletions = 0
    for line in out.decode(errors="replace").splitlines():
        added, deleted, _path = line.split("\t", 2)
        additions += int(added) if added.isdigit() else 0
        deletions += int(deleted) if deleted.isdigit() else 0
    return {"additions": additions, "deletions": deletions, "total": additions + deletions}


async def _full_commit(request: web.Request, project: sqlite3.Row, sha: str) -> dict[str, Any]:
    info = await repos_of(request).commit_info(project, sha)
    return {
        **info,
        "stats": await commit_stats(request, project, sha),
        "status": None,
        "project_id": project["id"],
        "last_pipeline": None,
    }


# ---------------------------------------------------------------- commits


async def create_commit(request: web.Request) -> web.Response:
    project = await load_project(request, DEVELOPER)
    params = await Params.of(request)
    actions = params.raw("actions")
    if not isinstance(actions, list) or not actions:
        fail(400, "actions is missing", key="error")
    sha = await commit_as_user(request, project, params, actions)
    return created(await _full_commit(request, project, sha))


async def list_commits(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = params.get_str("ref_name") or str(project["default_branch"])
    commits = await repos_of(request).log(project, ref, limit=None, path=params.get_str("path"))
    return paginate(request, commits)


async def get_commit(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    sha = await resolve_or_404(request, project, unquote(request.match_info["sha"]))
    return web.json_response(await _full_commit(request, project, sha))


async def commit_diff(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    repos = repos_of(request)
    sha = await resolve_or_404(request, project, unquote(request.match_info["sha"]))
    parents = (await repos.commit_info(project, sha))["parent_ids"]
    base = parents[0] if parents else None
    try:
        diffs = await repos.diff(project, base, sha)
    except GitError as error:
        fail(400, str(error))
    return paginate(request, diffs)


# ---------------------------------------------------------------- single-file writes


async def _write_file(request: web.Request, kind: str) -> str:
    project = await load_project(request, DEVELOPER)
    params = await Params.of(request)
    path = unquote(request.match_info["file_path"])
    action: dict[str, Any] = {"action": kind, "file_path": path}
    if kind != "delete":
        action["content"] = params.get_str("content", "")
        action["encoding"] = params.get_str("encoding")
        if params.has("execute_filemode"):
            action["execute_filemode"] = params.get_bool("execute_filemode")
    await commit_as_user(request, project, params, [action])
    return path


async def create_file(request: web.Request) -> web.Response:
    path = await _write_file(request, "create")
    return created({"file_path": path, "branch": (await Params.of(request)).get_str("branch")})


async def update_file(request: web.Request) -> web.Response:
    path = await _write_file(request, "update")
    return web.json_response(
        {"file_path": path, "branch": (await Params.of(request)).get_str("branch")}
    )


async def delete_file(request: web.Request) -> web.Response:
    await _write_file(request, "delete")
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/repository"
    app.router.add_post(f"{base}/commits", create_commit)
    app.router.add_get(f"{base}/commits", list_commits)
    app.router.add_get(f"{base}/commits/{{sha}}", get_commit)
    app.router.add_get(f"{base}/commits/{{sha}}/diff", commit_diff)
    app.router.add_post(f"{base}/files/{{file_path}}", create_file)
    app.router.add_put(f"{base}/files/{{file_path}}", update_file)
    app.router.add_delete(f"{base}/files/{{file_path}}", delete_file)
