"""The repository route module: owns the :class:`GitRepos` service (``app[GIT_KEY]``) and
serves files, raw files, the tree and compare. Branches, protected branches, commits and
smart HTTP live in their own modules; :func:`emit_push` is re-exported here for the
modules that announce ref moves."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.base import API, REPORTER, Sim, load_project
from sim.core.http import Params, fail, missing, not_found, paginate
from sim.git.errors import GitError
from sim.git.push_events import emit_push as emit_push
from sim.git.repos import GIT_KEY, GitRepos

SCHEMA = ""


def repos_of(request: web.Request) -> GitRepos:
    return request.app[GIT_KEY]


async def resolve_or_404(
    request: web.Request, project: sqlite3.Row, ref: str, what: str = "Commit"
) -> str:
    sha = await repos_of(request).resolve(project, ref)
    if sha is None:
        not_found(f"{what} Not Found")
    return sha


# ---------------------------------------------------------------- files


def _file_path(request: web.Request) -> str:
    return unquote(request.match_info["file_path"])


async def get_file(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = params.get_str("ref")
    if not ref:
        missing("ref")
    path = _file_path(request)
    repos = repos_of(request)
    sha = await repos.resolve(project, ref)
    entry = await repos.blob_entry(project, sha, path) if sha else None
    content = await repos.read_file(project, sha, path) if sha and entry else None
    if sha is None or entry is None or content is None:
        not_found("File Not Found")
    last = await repos.log(project, sha, limit=1, path=path)
    body: dict[str, Any] = {
        "file_name": entry["name"],
        "file_path": path,
        "size": len(content),
        "encoding": "base64",
        "content": base64.b64encode(content).decode(),
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "ref": ref,
        "blob_id": entry["id"],
        "commit_id": sha,
        "last_commit_id": last[0]["id"] if last else sha,
        "execute_filemode": entry["mode"] == "100755",
    }
    return web.json_response(body)


async def get_raw_file(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = params.get_str("ref") or str(project["default_branch"])
    repos = repos_of(request)
    sha = await repos.resolve(project, ref)
    content = await repos.read_file(project, sha, _file_path(request)) if sha else None
    if content is None:
        not_found("File Not Found")
    return web.Response(body=content, content_type="text/plain", charset="utf-8")


# ---------------------------------------------------------------- tree and compare


async def get_tree(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = params.get_str("ref") or str(project["default_branch"])
    path = params.get_str("path") or ""
    entries = await repos_of(request).tree(
        project, ref, path, recursive=params.get_bool("recursive")
    )
    if entries is None or (path and not entries):
        not_found("Tree Not Found")
    shaped = [
        {"id": e["id"], "name": e["name"], "type": e["type"], "path": e["path"], "mode": e["mode"]}
        for e in entries
    ]
    return paginate(request, shaped)


async def compare(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    repos = repos_of(request)
    source, target = params.required("from"), params.required("to")
    from_sha = await resolve_or_404(request, project, source, "Ref")
    to_sha = await resolve_or_404(request, project, target, "Ref")
    straight = params.get_bool("straight")
    base = from_sha if straight else await repos.merge_base(project, from_sha, to_sha)
    base = base or from_sha
    commits = [] if base == to_sha else await _commits_between(repos, project, base, to_sha)
    try:
        diffs = await repos.diff(project, base, to_sha)
    except GitError as error:
        fail(400, str(error))
    body = {
        "commit": commits[-1] if commits else None,
        "commits": commits,
        "diffs": diffs,
        "compare_timeout": False,
        "compare_same_ref": from_sha == to_sha,
        "web_url": f"{repos.web_url(project)}/-/compare/{from_sha}...{to_sha}",
    }
    return web.json_response(body)


async def _commits_between(
    repos: GitRepos, project: sqlite3.Row, base: str, head: str
) -> list[dict[str, Any]]:
    """Commits in ``base..head``, oldest first, as GitLab's compare lists them."""
    return list(reversed(await repos.log(project, head, limit=None, exclude=base)))


def git_repos_for(sim: Sim) -> GitRepos:
    """The simulator's repositories live in ``<state_dir>/repos``."""
    return GitRepos(sim.config.state_dir / "repos", base_url=lambda: sim.base_url)


def setup(app: web.Application, sim: Sim) -> None:
    app[GIT_KEY] = git_repos_for(sim)
    base = f"{API}/projects/{{id}}/repository"
    app.router.add_get(f"{base}/files/{{file_path}}/raw", get_raw_file)
    app.router.add_get(f"{base}/files/{{file_path}}", get_file)
    app.router.add_get(f"{base}/tree", get_tree)
    app.router.add_get(f"{base}/compare", compare)
