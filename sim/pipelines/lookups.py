"""What the pipeline and job routes share: the engine, the pipeline or job a request names (404
when it is not there or not the project's), jobs as GitLab shows them, and the ``scope``
filter."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    REPORTER,
    SIM_KEY,
    load_project,
)
from sim.core.http import fail, not_found
from sim.git.repos import GIT_KEY
from sim.pipelines.ci_status import ALL_STATUSES
from sim.pipelines.engine import (
    CI_KEY,
    PipelineEngine,
)
from sim.pipelines.records import SCHEMA as SCHEMA
from sim.pipelines.records import job_by_id, pipeline_by_id
from sim.pipelines.views import (
    commit_json,
    job_json,
)
from sim.pipelines.views import latest_pipeline_json as latest_pipeline_json

SCOPES = {
    "running": "status = 'running'",
    "pending": "status = 'pending'",
    "finished": "status IN ('success', 'failed', 'canceled', 'skipped')",
    "branches": "tag = 0",
    "tags": "tag = 1",
}


UNFINISHED = ("created", "pending", "running")


def engine_for(request: web.Request) -> PipelineEngine:
    return request.app[CI_KEY]


def int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        not_found()


async def pipeline_of(
    request: web.Request, min_access: int = REPORTER
) -> tuple[sqlite3.Row, sqlite3.Row]:
    project = await load_project(request, min_access)
    row = await pipeline_by_id(request.app[SIM_KEY], int_param(request, "pipeline_id"))
    if row is None or row["project_id"] != project["id"]:
        not_found()
    return project, row


async def job_of(
    request: web.Request, min_access: int = REPORTER
) -> tuple[sqlite3.Row, sqlite3.Row, sqlite3.Row]:
    sim = request.app[SIM_KEY]
    project = await load_project(request, min_access)
    job = await job_by_id(sim, int_param(request, "job_id"))
    if job is None or job["project_id"] != project["id"]:
        not_found()
    pipeline = await pipeline_by_id(sim, int(job["pipeline_id"]))
    assert pipeline is not None
    return project, pipeline, job


async def jobs_json(
    request: web.Request, project: sqlite3.Row, jobs: list[sqlite3.Row]
) -> list[dict[str, Any]]:
    sim = request.app[SIM_KEY]
    pipelines: dict[int, sqlite3.Row] = {}
    commits: dict[str, dict[str, Any]] = {}  # one git call per commit, not per job
    shaped = []
    for job in jobs:
        pipeline_id = int(job["pipeline_id"])
        if pipeline_id not in pipelines:
            found = await pipeline_by_id(sim, pipeline_id)
            assert found is not None
            pipelines[pipeline_id] = found
        pipeline = pipelines[pipeline_id]
        sha = str(pipeline["sha"])
        if sha not in commits:
            commits[sha] = await commit_json(request.app[GIT_KEY], project, sha)
        shaped.append(await job_json(sim, project, job, pipeline, commits[sha]))
    return shaped


def scopes_of(request: web.Request) -> list[str]:
    """``scope`` as ``scope[]=a&scope[]=b``, ``scope=a&scope=b`` or ``scope=a,b``."""
    values = [*request.query.getall("scope", []), *request.query.getall("scope[]", [])]
    scopes = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if any(scope not in ALL_STATUSES for scope in scopes):
        fail(400, "Scope contains invalid value(s)")
    return scopes
