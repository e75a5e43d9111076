"""The job routes: list a project's jobs, get one, its trace, and retry, play or cancel it."""

from __future__ import annotations

from aiohttp import web

from sim.core.base import (
    DEVELOPER,
    REPORTER,
    SIM_KEY,
    current_user,
    load_project,
)
from sim.core.http import created, fail, paginate
from sim.pipelines.engine import (
    JobNotPlayable,
    JobNotRetryable,
)
from sim.pipelines.lookups import (
    UNFINISHED,
    engine_for,
    job_of,
    jobs_json,
    scopes_of,
)
from sim.pipelines.records import SCHEMA as SCHEMA
from sim.pipelines.records import job_by_id
from sim.pipelines.views import latest_pipeline_json as latest_pipeline_json


async def list_jobs(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    scopes = scopes_of(request)
    marks = ", ".join("?" for _ in scopes)
    where = f" AND status IN ({marks})" if scopes else ""
    jobs = await sim.store.fetchall(
        f"SELECT * FROM ci_jobs WHERE project_id = ?{where} ORDER BY id DESC",
        (project["id"], *scopes),
    )
    return paginate(request, await jobs_json(request, project, jobs))


async def get_job(request: web.Request) -> web.Response:
    project, _, job = await job_of(request)
    return web.json_response((await jobs_json(request, project, [job]))[0])


async def job_trace(request: web.Request) -> web.Response:
    _, _, job = await job_of(request)
    live = engine_for(request).live_trace(int(job["id"]))
    return web.Response(text=live if live is not None else str(job["trace"]))


async def retry_job(request: web.Request) -> web.Response:
    project, _, job = await job_of(request, DEVELOPER)
    try:
        new_id = await engine_for(request).retry_job(
            int(job["id"]), int(current_user(request)["id"])
        )
    except JobNotRetryable:
        fail(403, "403 Forbidden - Job is not retryable")
    new_job = await job_by_id(request.app[SIM_KEY], new_id)
    assert new_job is not None
    return created((await jobs_json(request, project, [new_job]))[0])


async def play_job_route(request: web.Request) -> web.Response:
    project, _, job = await job_of(request, DEVELOPER)
    try:
        await engine_for(request).play(int(job["id"]), int(current_user(request)["id"]))
    except JobNotPlayable:
        fail(400, "400 Bad request - Unplayable Job")
    fresh = await job_by_id(request.app[SIM_KEY], int(job["id"]))
    assert fresh is not None
    return web.json_response((await jobs_json(request, project, [fresh]))[0])


async def cancel_job(request: web.Request) -> web.Response:
    project, pipeline, job = await job_of(request, DEVELOPER)
    if job["status"] not in (*UNFINISHED, "manual"):
        fail(403, "403 Forbidden - Job is not cancelable")
    await engine_for(request).cancel(int(pipeline["id"]), [int(job["id"])])
    fresh = await job_by_id(request.app[SIM_KEY], int(job["id"]))
    assert fresh is not None
    return created((await jobs_json(request, project, [fresh]))[0])
