"""A job's JUnit report files as artifacts: ``GET /projects/:id/jobs/:job_id/artifacts/<path>``.

GitLab serves a single file of a job's artifacts archive at that address; a project that
lists its JUnit report under ``artifacts:paths`` as well as ``artifacts:reports:junit`` gets
the report of every job, retried ones included (the pipeline's ``test_report`` shows only the
latest job of each name). The simulator keeps the parsed test cases of each job, so a path
that one of the job's ``artifacts:reports:junit`` globs matches answers those cases as one
JUnit document; any other path, or a job that uploaded no report, is a 404 as on GitLab.
"""

from __future__ import annotations

import fnmatch
import json

from aiohttp import web

from sim.core.base import API, REPORTER, SIM_KEY, Sim, load_project
from sim.core.http import not_found
from sim.pipelines.junit import render_junit
from sim.pipelines.records import job_by_id
from sim.pipelines.views import stored_cases

SCHEMA = ""


async def job_artifact(request: web.Request) -> web.Response:
    project = await load_project(request, REPORTER)
    try:
        job_id = int(request.match_info["job_id"])
    except ValueError:
        not_found()
    job = await job_by_id(request.app[SIM_KEY], job_id)
    if job is None or job["project_id"] != project["id"] or job["test_cases"] is None:
        not_found()
    path = request.match_info["path"]
    patterns = json.loads(job["spec"]).get("junit") or []
    if not any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
        not_found()
    body = render_junit(str(job["name"]), stored_cases(job))
    return web.Response(body=body, content_type="application/octet-stream")


def setup(app: web.Application, sim: Sim) -> None:
    del sim
    project = f"{API}/projects/{{id}}"
    app.router.add_get(f"{project}/jobs/{{job_id:\\d+}}/artifacts/{{path:.+}}", job_artifact)
