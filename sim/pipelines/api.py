"""The pipelines route module: GitLab's Pipelines and Jobs APIs over the pipeline engine.

Pipelines (Reporter reads, Developer writes): list (``ref``, ``sha``, ``status``,
``source``, ``scope``, ``username``, ``yaml_errors``, ``order_by``, ``sort``), get, latest,
create (``POST /pipeline?ref=``, optional ``variables``), retry, cancel, jobs
(``scope``, ``include_retried``), variables, ``test_report`` and ``test_report_summary``,
and a merge request's pipelines (its source branch's pipelines of its commits, and its
merge request and merged-results pipelines). Jobs: list (``scope``), get, ``trace``
(text/plain, live while the job runs), retry, ``play`` (a manual job) and cancel, served by
:mod:`sim.pipelines.job_routes`; what both share is in :mod:`sim.pipelines.lookups`.
Pipelines are created by pushes and merge requests
through :mod:`sim.pipelines.engine`; the MR ``head_pipeline`` comes from
:func:`latest_pipeline_json`.

``GET /api/v4/_sim/idle?timeout=30`` (administrators) waits until no pipeline is being
created and no job is queued or running, and answers ``{"idle": true|false}``: tests use it
instead of polling.

Jobs run the repository's scripts on the simulator's host, as a shell runner would: serve
the simulator only to people trusted with that.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    DEVELOPER,
    REPORTER,
    SIM_KEY,
    Sim,
    current_user,
    load_project,
)
from sim.core.http import Params, created, fail, forbidden, missing, paginate
from sim.git.repos import GIT_KEY
from sim.merge_requests.records import load_merge_request
from sim.merge_requests.views import git_facts
from sim.pipelines.ci_status import ALL_STATUSES
from sim.pipelines.engine import (
    CI_KEY,
    PipelineEngine,
    PipelineRejected,
)
from sim.pipelines.job_routes import (
    cancel_job,
    get_job,
    job_trace,
    list_jobs,
    play_job_route,
    retry_job,
)
from sim.pipelines.junit import report_json, suite_json, summary_json
from sim.pipelines.lookups import (
    SCOPES,
    engine_for,
    jobs_json,
    pipeline_of,
    scopes_of,
)
from sim.pipelines.records import SCHEMA as SCHEMA
from sim.pipelines.records import pipeline_by_id, pipeline_jobs
from sim.pipelines.views import latest_pipeline_json as latest_pipeline_json
from sim.pipelines.views import (
    pipeline_basic_json,
    pipeline_json,
    stored_cases,
)

ORDER_BY = ("id", "status", "ref", "updated_at", "user_id")


def _choice(params: Params, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get_str(name) or default
    if value not in allowed:
        fail(400, f"{name} does not have a valid value", key="error")
    return value


# ---------------------------------------------------------------- pipelines


async def list_pipelines(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    clauses, values = ["p.project_id = ?"], [project["id"]]
    for name in ("ref", "sha", "source"):
        value = params.get_str(name)
        if value is not None:
            clauses.append(f"p.{name} = ?")
            values.append(value)
    if params.has("status"):
        clauses.append("p.status = ?")
        values.append(_choice(params, "status", ALL_STATUSES, ""))
    if params.has("scope"):
        scope = _choice(params, "scope", tuple(SCOPES), "")
        clauses.append(f"p.{SCOPES[scope]}")
    if params.get_str("username") is not None:
        clauses.append("u.username = ?")
        values.append(params.get_str("username"))
    if params.has("yaml_errors"):
        clauses.append(f"p.yaml_errors IS {'NOT ' if params.get_bool('yaml_errors') else ''}NULL")
    order = _choice(params, "order_by", ORDER_BY, "id")
    direction = _choice(params, "sort", ("asc", "desc"), "desc").upper()
    rows = await sim.store.fetchall(
        "SELECT p.* FROM ci_pipelines p LEFT JOIN users u ON u.id = p.user_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY p.{order} {direction}, p.id {direction}",
        values,
    )
    return paginate(request, [pipeline_basic_json(sim, project, row) for row in rows])


async def get_pipeline(request: web.Request) -> web.Response:
    project, row = await pipeline_of(request)
    return web.json_response(await pipeline_json(request.app[SIM_KEY], project, row))


async def latest_pipeline(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = params.get_str("ref") or str(project["default_branch"])
    sha = await request.app[GIT_KEY].resolve(project, ref)
    row = await sim.store.fetchone(
        "SELECT * FROM ci_pipelines WHERE project_id = ? AND ref = ? AND sha = ?"
        " ORDER BY id DESC LIMIT 1",
        (project["id"], ref, sha or ""),
    )
    if row is None:
        forbidden()  # GitLab answers 403 when the ref's head has no pipeline
    return web.json_response(await pipeline_json(sim, project, row))


def _variables(params: Params) -> list[tuple[str, str]]:
    raw = params.raw("variables")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(item, dict) and isinstance(item.get("key"), str) and item["key"] for item in raw
    ):
        fail(400, "variables is invalid: expected a list of {key, value} objects", key="error")
    return [(item["key"], str(item.get("value", ""))) for item in raw]


async def create_pipeline(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, DEVELOPER)
    params = await Params.of(request)
    ref = params.get_str("ref")
    if not ref:
        missing("ref")
    variables = _variables(params)
    repos = request.app[GIT_KEY]
    branch_sha = (await repos.branches(project)).get(ref)
    sha = branch_sha or await repos.resolve(project, f"refs/tags/{ref}")
    if sha is None:
        fail(400, {"base": ["Reference not found"]})
    try:
        pipeline_id = await engine_for(request).create(
            project,
            int(current_user(request)["id"]),
            ref=ref,
            sha=sha,
            source="api",
            tag=branch_sha is None,
            variables=variables,
            strict=True,
        )
    except PipelineRejected as error:
        fail(400, {"base": [str(error)]})
    row = await pipeline_by_id(sim, int(pipeline_id or 0))
    assert row is not None
    return created(await pipeline_json(sim, project, row))


async def retry_pipeline(request: web.Request) -> web.Response:
    project, row = await pipeline_of(request, DEVELOPER)
    await engine_for(request).retry_pipeline(int(row["id"]), int(current_user(request)["id"]))
    return await _pipeline_answer(request, project, int(row["id"]), 201)


async def cancel_pipeline(request: web.Request) -> web.Response:
    project, row = await pipeline_of(request, DEVELOPER)
    await engine_for(request).cancel(int(row["id"]))
    return await _pipeline_answer(request, project, int(row["id"]), 200)


async def _pipeline_answer(
    request: web.Request, project: sqlite3.Row, pipeline_id: int, status: int
) -> web.Response:
    sim = request.app[SIM_KEY]
    row = await pipeline_by_id(sim, pipeline_id)
    assert row is not None
    return web.json_response(await pipeline_json(sim, project, row), status=status)


async def pipeline_jobs_route(request: web.Request) -> web.Response:
    project, row = await pipeline_of(request)
    params = await Params.of(request)
    scopes = scopes_of(request)
    jobs = await pipeline_jobs(
        request.app[SIM_KEY], int(row["id"]), include_retried=params.get_bool("include_retried")
    )
    # Newest first, as GitLab's jobs finder orders them.
    jobs = sorted(
        (job for job in jobs if not scopes or job["status"] in scopes),
        key=lambda job: -int(job["id"]),
    )
    return paginate(request, await jobs_json(request, project, jobs))


async def pipeline_variables_route(request: web.Request) -> web.Response:
    _, row = await pipeline_of(request)
    return web.json_response(json.loads(row["variables"]))


async def _suites(sim: Sim, pipeline_id: int) -> list[dict[str, Any]]:
    return [
        suite_json(str(job["name"]), stored_cases(job), [int(job["id"])], job["suite_error"])
        for job in await pipeline_jobs(sim, pipeline_id)
        if job["test_cases"] is not None or job["suite_error"] is not None
    ]


async def test_report(request: web.Request) -> web.Response:
    _, row = await pipeline_of(request)
    return web.json_response(report_json(await _suites(request.app[SIM_KEY], int(row["id"]))))


async def test_report_summary(request: web.Request) -> web.Response:
    _, row = await pipeline_of(request)
    return web.json_response(summary_json(await _suites(request.app[SIM_KEY], int(row["id"]))))


async def merge_request_pipelines(request: web.Request) -> web.Response:
    """Pipelines of the MR's commits on its source branch, and its own MR pipelines."""
    sim = request.app[SIM_KEY]
    project, mr = await load_merge_request(request, REPORTER)
    facts = await git_facts(request.app, project, mr)
    shas: list[str] = []
    if facts.head_sha and facts.base_sha:
        commits = await request.app[GIT_KEY].log(
            project, facts.head_sha, limit=None, exclude=facts.base_sha
        )
        shas = [commit["id"] for commit in commits]
    marks = ", ".join("?" for _ in shas) or "NULL"
    rows = await sim.store.fetchall(
        "SELECT * FROM ci_pipelines WHERE project_id = ? AND"
        f" ((ref = ? AND sha IN ({marks})) OR merge_request_iid = ?) ORDER BY id DESC",
        (project["id"], mr["source_branch"], *shas, mr["iid"]),
    )
    return paginate(request, [pipeline_basic_json(sim, project, row) for row in rows])


# ---------------------------------------------------------------- jobs


async def wait_idle(request: web.Request) -> web.Response:
    if not current_user(request)["is_admin"]:
        forbidden()
    params = await Params.of(request)
    timeout = min(300, max(0, params.get_int("timeout", 30) or 0))
    return web.json_response({"idle": await engine_for(request).wait_idle(float(timeout))})


def setup(app: web.Application, sim: Sim) -> None:
    engine = PipelineEngine(app, sim)
    app[CI_KEY] = engine
    sim.events.subscribe("push", engine.on_push)
    sim.events.subscribe("tag_push", engine.on_push)
    sim.events.subscribe("merge_request", engine.on_merge_request)
    app.on_startup.append(engine.recover)
    app.on_shutdown.append(engine.close)
    project = f"{API}/projects/{{id}}"
    one = f"{project}/pipelines/{{pipeline_id:\\d+}}"
    r = app.router
    r.add_get(f"{project}/pipelines", list_pipelines)
    r.add_post(f"{project}/pipeline", create_pipeline)
    r.add_get(f"{project}/pipelines/latest", latest_pipeline)
    r.add_get(one, get_pipeline)
    r.add_post(f"{one}/retry", retry_pipeline)
    r.add_post(f"{one}/cancel", cancel_pipeline)
    r.add_get(f"{one}/jobs", pipeline_jobs_route)
    r.add_get(f"{one}/variables", pipeline_variables_route)
    r.add_get(f"{one}/test_report", test_report)
    r.add_get(f"{one}/test_report_summary", test_report_summary)
    r.add_get(f"{project}/merge_requests/{{iid}}/pipelines", merge_request_pipelines)
    job = f"{project}/jobs/{{job_id:\\d+}}"
    r.add_get(f"{project}/jobs", list_jobs)
    r.add_get(job, get_job)
    r.add_get(f"{job}/trace", job_trace)
    r.add_post(f"{job}/retry", retry_job)
    r.add_post(f"{job}/play", play_job_route)
    r.add_post(f"{job}/cancel", cancel_job)
    r.add_get(f"{API}/_sim/idle", wait_idle)
