"""What a merge request changes: ``/changes`` (the MR with its diff), ``/diffs`` and
``/commits``, all computed from the merge base of the target and the head."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from forge.sim.git_repos import GIT_KEY, run_git
from forge.sim.http import paginate
from forge.sim.mr_records import load_merge_request
from forge.sim.mr_views import diff_refs, git_facts, single_json


async def _refs(request: web.Request) -> tuple[sqlite3.Row, sqlite3.Row, dict[str, str | None]]:
    project, mr = await load_merge_request(request)
    return project, mr, diff_refs(await git_facts(request.app, project, mr))


async def get_changes(request: web.Request) -> web.Response:
    project, mr, refs = await _refs(request)
    body = await single_json(request, project, mr)
    changes: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        changes = await request.app[GIT_KEY].diff(project, refs["base_sha"], refs["head_sha"])
    body["changes"] = changes
    body["overflow"] = False
    return web.json_response(body)


async def list_diffs(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    changes: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        changes = await request.app[GIT_KEY].diff(project, refs["base_sha"], refs["head_sha"])
    return paginate(request, changes)


async def mr_commits(
    app: web.Application, project: sqlite3.Row, base: str, head: str
) -> list[dict[str, Any]]:
    """Commits on ``head`` that ``base`` lacks, newest first (GitLab's MR commit list)."""
    repos = app[GIT_KEY]
    _, out = await run_git("rev-list", f"{base}..{head}", git_dir=await repos.ensure(project))
    wanted = set(out.decode().split())
    if not wanted:
        return []
    return [c for c in await repos.log(project, head, limit=None) if c["id"] in wanted]


async def list_commits(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    commits: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        commits = await mr_commits(request.app, project, refs["base_sha"], refs["head_sha"])
    return paginate(request, commits)
