"""Pipeline Hook and Job Hook payloads, shaped like GitLab's documented examples, emitted on
the event bus (``pipeline`` and ``job`` kinds) each time a pipeline's or a job's status
changes. Webhook delivery is :mod:`sim.core.webhooks`' business.

As on GitLab, ``merge_request`` is set only for merge request pipelines
(``source: merge_request_event``); a branch pipeline has ``merge_request: null``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import SIM_KEY, Sim, project_by_ref, user_by_id
from sim.core.events import SimEvent
from sim.core.hook_payloads import project_hook_json, repository_hook_json, user_hook_json
from sim.core.http import parse_iso
from sim.git.repos import GIT_KEY
from sim.merge_requests.records import mr_by_iid
from sim.merge_requests.status import detailed_merge_status, legacy_merge_status
from sim.merge_requests.views import mr_web_url, snapshot
from sim.pipelines.records import (
    job_by_id,
    pipeline_by_id,
    pipeline_jobs,
    seconds_between,
)
from sim.pipelines.views import commit_json, pipeline_url, status_label


def hook_time(stamp: str | None) -> str | None:
    """Webhooks print times as ``2016-08-12 15:23:28 UTC``."""
    return parse_iso(stamp).strftime("%Y-%m-%d %H:%M:%S UTC") if stamp else None


async def _user(sim: Sim, user_id: int | None) -> dict[str, Any] | None:
    row = await user_by_id(sim, int(user_id)) if user_id is not None else None
    return user_hook_json(sim, row) if row is not None else None


def _job_fields(job: sqlite3.Row) -> dict[str, Any]:
    """What both hooks say of a job: a pipeline event's ``builds`` as they are, a job event
    prefixed with ``build_``."""
    return {
        "id": job["id"],
        "stage": job["stage"],
        "name": job["name"],
        "status": job["status"],
        "created_at": hook_time(job["created_at"]),
        "started_at": hook_time(job["started_at"]),
        "finished_at": hook_time(job["finished_at"]),
        "duration": seconds_between(job["started_at"], job["finished_at"]),
        "queued_duration": seconds_between(job["queued_at"], job["started_at"]),
        "allow_failure": bool(job["allow_failure"]),
    }


def _build(job: sqlite3.Row, user: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **_job_fields(job),
        "failure_reason": job["failure_reason"],
        "when": job["run_when"],
        "manual": False,
        "user": user,
        "runner": None,
        "artifacts_file": {"filename": None, "size": None},
        "environment": None,
    }


async def _merge_request(
    app: web.Application, project: sqlite3.Row, iid: int | None
) -> dict[str, Any] | None:
    sim = app[SIM_KEY]
    mr = await mr_by_iid(sim, int(project["id"]), iid) if iid is not None else None
    if mr is None:
        return None
    facts = (await snapshot(app, project, mr)).facts(mr)
    return {
        "id": mr["id"],
        "iid": mr["iid"],
        "title": mr["title"],
        "source_branch": mr["source_branch"],
        "source_project_id": project["id"],
        "target_branch": mr["target_branch"],
        "target_project_id": project["id"],
        "state": mr["state"],
        "merge_status": legacy_merge_status(facts),
        "detailed_merge_status": detailed_merge_status(facts),
        "url": mr_web_url(sim, project, int(mr["iid"])),
    }


async def _commit(app: web.Application, project: sqlite3.Row, sha: str) -> dict[str, Any]:
    info = await commit_json(app[GIT_KEY], project, sha)
    return {
        "id": sha,
        "message": info.get("message"),
        "title": info.get("title"),
        "timestamp": info.get("committed_date"),
        "url": info.get("web_url"),
        "author": {"name": info.get("author_name"), "email": info.get("author_email")},
    }


async def pipeline_payload(
    app: web.Application, project: sqlite3.Row, pipeline: sqlite3.Row
) -> dict[str, Any]:
    sim = app[SIM_KEY]
    jobs = await pipeline_jobs(sim, int(pipeline["id"]))
    status = str(pipeline["status"])
    duration = seconds_between(pipeline["started_at"], pipeline["finished_at"])
    variables = [
        {"key": item["key"], "value": item["value"]} for item in json.loads(pipeline["variables"])
    ]
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline["id"],
            "iid": pipeline["iid"],
            "name": None,
            "ref": pipeline["ref"],
            "tag": bool(pipeline["tag"]),
            "sha": pipeline["sha"],
            "before_sha": pipeline["before_sha"],
            "source": pipeline["source"],
            "status": status,
            "detailed_status": status_label(status),
            "stages": json.loads(pipeline["stages"]),
            "created_at": hook_time(pipeline["created_at"]),
            "finished_at": hook_time(pipeline["finished_at"]),
            "duration": int(duration) if duration is not None else None,
            "queued_duration": seconds_between(pipeline["created_at"], pipeline["started_at"]),
            "variables": variables,
            "url": pipeline_url(sim, project, int(pipeline["id"])),
        },
        "merge_request": await _merge_request(app, project, pipeline["merge_request_iid"]),
        "user": await _user(sim, pipeline["user_id"]),
        "project": project_hook_json(sim, project),
        "commit": await _commit(app, project, str(pipeline["sha"])),
        "builds": [_build(job, await _user(sim, job["user_id"])) for job in jobs],
    }


async def job_payload(
    app: web.Application, project: sqlite3.Row, pipeline: sqlite3.Row, job: sqlite3.Row
) -> dict[str, Any]:
    sim = app[SIM_KEY]
    commit = await _commit(app, project, str(pipeline["sha"]))
    hook_project = project_hook_json(sim, project)
    retries = await sim.store.fetchone(
        "SELECT COUNT(*) FROM ci_jobs WHERE pipeline_id = ? AND name = ? AND id < ?",
        (pipeline["id"], job["name"], job["id"]),
    )
    return {
        "object_kind": "build",
        "ref": pipeline["ref"],
        "tag": bool(pipeline["tag"]),
        "before_sha": pipeline["before_sha"],
        "sha": pipeline["sha"],
        "retries_count": int(retries[0]) if retries else 0,
        **{f"build_{key}": value for key, value in _job_fields(job).items()},
        "build_failure_reason": job["failure_reason"] or "unknown_failure",
        "pipeline_id": pipeline["id"],
        "project_id": project["id"],
        "project_name": f"{project['namespace']} / {project['name']}",
        "user": await _user(sim, job["user_id"]),
        "commit": {
            "id": pipeline["id"],
            "name": None,
            "sha": pipeline["sha"],
            "message": commit["message"],
            "author_name": commit["author"]["name"],
            "author_email": commit["author"]["email"],
            "author_url": None,
            "status": pipeline["status"],
            "duration": seconds_between(pipeline["started_at"], pipeline["finished_at"]),
            "started_at": hook_time(pipeline["started_at"]),
            "finished_at": hook_time(pipeline["finished_at"]),
        },
        "repository": {
            **repository_hook_json(sim, project),
            "git_http_url": hook_project["git_http_url"],
            "git_ssh_url": hook_project["git_ssh_url"],
            "visibility_level": hook_project["visibility_level"],
        },
        "project": hook_project,
        "runner": None,
        "environment": None,
    }


async def emit_pipeline_event(app: web.Application, pipeline_id: int) -> None:
    sim = app[SIM_KEY]
    pipeline = await pipeline_by_id(sim, pipeline_id)
    project = await project_by_ref(sim, str(pipeline["project_id"])) if pipeline else None
    if pipeline is None or project is None:
        return
    payload = await pipeline_payload(app, project, pipeline)
    sim.events.emit(SimEvent("pipeline", int(project["id"]), payload))


async def emit_job_event(app: web.Application, job_id: int) -> None:
    sim = app[SIM_KEY]
    job = await job_by_id(sim, job_id)
    pipeline = await pipeline_by_id(sim, int(job["pipeline_id"])) if job else None
    project = await project_by_ref(sim, str(pipeline["project_id"])) if pipeline else None
    if job is None or pipeline is None or project is None:
        return
    payload = await job_payload(app, project, pipeline, job)
    sim.events.emit(SimEvent("job", int(project["id"]), payload))
