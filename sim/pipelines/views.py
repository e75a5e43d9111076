"""The JSON of pipelines and jobs as GitLab's REST API shows them (``PipelineBasic``,
``Pipeline``, ``Job``), and the MR ``head_pipeline`` lookup."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sim.core.base import Sim, project_by_ref, user_by_id, user_json
from sim.git.errors import GitError
from sim.git.repos import GitRepos
from sim.pipelines.records import head_pipeline_row, seconds_between

# status -> (text, label) shown by detailed_status
_STATUS_TEXT = {
    "created": ("Created", "created"),
    "pending": ("Pending", "pending"),
    "running": ("Running", "running"),
    "success": ("Passed", "passed"),
    "failed": ("Failed", "failed"),
    "canceled": ("Canceled", "canceled"),
    "skipped": ("Skipped", "skipped"),
    "manual": ("Blocked", "waiting for manual action"),  # a blocking manual job waits
}


def project_url(sim: Sim, project: sqlite3.Row) -> str:
    return f"{sim.base_url}/{project['namespace']}/{project['path']}"


def pipeline_url(sim: Sim, project: sqlite3.Row, pipeline_id: int) -> str:
    return f"{project_url(sim, project)}/-/pipelines/{pipeline_id}"


def job_url(sim: Sim, project: sqlite3.Row, job_id: int) -> str:
    return f"{project_url(sim, project)}/-/jobs/{job_id}"


def status_label(status: str) -> str:
    return _STATUS_TEXT.get(status, (status, status))[1]


def detailed_status(path: str, status: str) -> dict[str, Any]:
    text, label = _STATUS_TEXT.get(status, (status.capitalize(), status))
    return {
        "icon": f"status_{status}",
        "text": text,
        "label": label,
        "group": status,
        "tooltip": label,
        "has_details": True,
        "details_path": path,
        "illustration": None,
        "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
    }


def pipeline_basic_json(sim: Sim, project: sqlite3.Row, row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "iid": row["iid"],
        "project_id": row["project_id"],
        "sha": row["sha"],
        "ref": row["ref"],
        "status": row["status"],
        "source": row["source"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "web_url": pipeline_url(sim, project, int(row["id"])),
        "name": None,
    }


async def _user(sim: Sim, user_id: int | None) -> dict[str, Any] | None:
    row = await user_by_id(sim, int(user_id)) if user_id is not None else None
    return user_json(sim, row) if row is not None else None


async def pipeline_json(sim: Sim, project: sqlite3.Row, row: sqlite3.Row) -> dict[str, Any]:
    """The full ``Pipeline`` entity (single pipeline, create, retry, cancel, head_pipeline)."""
    duration = seconds_between(row["started_at"], row["finished_at"])
    path = f"/{project['namespace']}/{project['path']}/-/pipelines/{row['id']}"
    return {
        **pipeline_basic_json(sim, project, row),
        "before_sha": row["before_sha"],
        "tag": bool(row["tag"]),
        "yaml_errors": row["yaml_errors"],
        "user": await _user(sim, row["user_id"]),
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "committed_at": None,
        "duration": int(duration) if duration is not None else None,
        "queued_duration": seconds_between(row["created_at"], row["started_at"]),
        "coverage": None,
        "detailed_status": detailed_status(path, str(row["status"])),
        "archived": False,
    }


async def commit_json(repos: GitRepos, project: sqlite3.Row, sha: str) -> dict[str, Any]:
    try:
        return await repos.commit_info(project, sha)
    except GitError:
        return {"id": sha, "short_id": sha[:8]}


async def job_json(
    sim: Sim,
    project: sqlite3.Row,
    job: sqlite3.Row,
    pipeline: sqlite3.Row,
    commit: dict[str, Any],
) -> dict[str, Any]:
    """GitLab's ``Job`` entity; ``commit`` is the pipeline's commit (shared by its jobs)."""
    body: dict[str, Any] = {
        "id": job["id"],
        "status": job["status"],
        "stage": job["stage"],
        "name": job["name"],
        "ref": pipeline["ref"],
        "tag": bool(pipeline["tag"]),
        "coverage": None,
        "allow_failure": bool(job["allow_failure"]),
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
        "erased_at": None,
        "duration": seconds_between(job["started_at"], job["finished_at"]),
        "queued_duration": seconds_between(job["queued_at"], job["started_at"]),
        "user": await _user(sim, job["user_id"]),
        "commit": commit,
        "pipeline": pipeline_basic_json(sim, project, pipeline),
        "web_url": job_url(sim, project, int(job["id"])),
        "project": {"ci_job_token_scope_enabled": False},
        "artifacts": [],
        "artifacts_expire_at": None,
        "runner": None,
        "runner_manager": None,
        "tag_list": [],
        "archived": False,
        "when": job["run_when"],
    }
    if job["status"] == "failed":
        body["failure_reason"] = job["failure_reason"]
    if job["test_cases"] is not None:
        body["artifacts"] = [{"file_type": "junit", "size": len(job["test_cases"]),
                              "filename": "junit.xml.gz", "file_format": "gzip"}]  # fmt: skip
    return body


def stored_cases(job: sqlite3.Row) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(job["test_cases"] or "[]")
    return cases


async def latest_pipeline_json(
    sim: Sim, project_id: int, sha: str, mr_iid: int | None = None
) -> dict[str, Any] | None:
    """The newest pipeline testing ``sha`` as a full ``Pipeline`` (an MR's ``head_pipeline``):
    on ``sha`` itself, or MR ``mr_iid``'s merged-results pipeline built from it."""
    row = await head_pipeline_row(sim, project_id, sha, mr_iid)
    if row is None:
        return None
    project = await project_by_ref(sim, str(project_id))
    if project is None:
        return None
    return await pipeline_json(sim, project, row)
