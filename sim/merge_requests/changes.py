"""What a merge request changes: ``/changes`` (the MR with its diff), ``/diffs`` and
``/commits``, all computed from the merge base of the target and the head."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.http import paginate
from sim.git.repos import GIT_KEY
from sim.merge_requests.records import load_merge_request
from sim.merge_requests.views import diff_refs, git_facts, single_json


async def _refs(request: web.Request) -> tuple[sqlite3.Row, sqlite3.Row, dict[str, str | None]]:
    project, mr = await load_merge_request(request)
    return project, mr, diff_refs(await git_facts(request.app, project, mr))


async def _diff(
    app: web.Application, project: sqlite3.Row, refs: dict[str, str | None]
) -> list[dict[str, Any]]:
    base, head = refs["base_sha"], refs["head_sha"]
    return await app[GIT_KEY].diff(project, base, head) if base and head else []


async def get_changes(request: web.Request) -> web.Response:
    project, mr, refs = await _refs(request)
    body = await single_json(request, project, mr)
    body["changes"] = await _diff(request.app, project, refs)
    body["overflow"] = False
    return web.json_response(body)


async def list_diffs(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    return paginate(request, await _diff(request.app, project, refs))


async def list_commits(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    commits: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        commits = await request.app[GIT_KEY].log(
            project, refs["head_sha"], limit=None, exclude=refs["base_sha"]
        )
    return paginate(request, commits)
