"""Pipeline and job storage: the tables, and the reads and writes the engine and the routes
share. Pipelines have a per-project ``iid``; pipeline and job ids are global, as on GitLab.

A retried job keeps its row (``retried = 1``) and a new row takes its place; "the jobs of
a pipeline" means the rows not retried unless said otherwise. A merged-results pipeline runs
on a merge commit (``sha``) and remembers the MR head it tests in ``source_sha``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from sim.core.base import Sim
from sim.core.http import now_iso, parse_iso
from sim.pipelines.ci_config import CiConfig, JobSpec
from sim.pipelines.ci_status import JobState, composite_status

SCHEMA = """
CREATE TABLE IF NOT EXISTS ci_pipelines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    iid INTEGER NOT NULL,
    ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    before_sha TEXT NOT NULL,
    tag INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    yaml_errors TEXT,
    user_id INTEGER REFERENCES users(id),
    stages TEXT NOT NULL DEFAULT '[]',
    variables TEXT NOT NULL DEFAULT '[]',
    merge_request_iid INTEGER,
    source_sha TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    UNIQUE (project_id, iid)
);
CREATE TABLE IF NOT EXISTS ci_project_settings (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    merge_pipelines_enabled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ci_pipelines_sha ON ci_pipelines (project_id, sha);
CREATE INDEX IF NOT EXISTS ci_pipelines_ref ON ci_pipelines (project_id, ref);
CREATE TABLE IF NOT EXISTS ci_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id INTEGER NOT NULL REFERENCES ci_pipelines(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    stage_idx INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT,
    allow_failure INTEGER NOT NULL DEFAULT 0,
    run_when TEXT NOT NULL DEFAULT 'on_success',
    retried INTEGER NOT NULL DEFAULT 0,
    user_id INTEGER REFERENCES users(id),
    trace TEXT NOT NULL DEFAULT '',
    test_cases TEXT,
    suite_error TEXT,
    created_at TEXT NOT NULL,
    queued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ci_jobs_pipeline ON ci_jobs (pipeline_id, retried);
CREATE INDEX IF NOT EXISTS ci_jobs_project ON ci_jobs (project_id, status)
"""


@dataclass(frozen=True)
class NewPipeline:
    project_id: int
    ref: str
    sha: str
    before_sha: str
    source: str
    user_id: int | None
    tag: bool = False
    variables: tuple[tuple[str, str], ...] = ()
    merge_request_iid: int | None = None
    source_sha: str | None = None  # the MR head a merged-results pipeline tests


def job_state(row: sqlite3.Row) -> JobState:
    return JobState(
        int(row["id"]),
        int(row["stage_idx"]),
        str(row["status"]),
        str(row["run_when"]),
        bool(row["allow_failure"]),
    )


def job_spec(row: sqlite3.Row) -> JobSpec:
    return JobSpec.from_json(json.loads(row["spec"]))


def pipeline_variables(row: sqlite3.Row) -> dict[str, str]:
    return {item["key"]: item["value"] for item in json.loads(row["variables"])}


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)


async def insert_pipeline(
    sim: Sim,
    new: NewPipeline,
    config: CiConfig | None,
    *,
    status: str = "created",
    yaml_errors: str | None = None,
) -> int:
    """Store a pipeline and, with ``config``, its jobs (all ``created``); returns its id."""
    stamp = now_iso()
    finished = stamp if status not in ("created",) else None
    variables = [{"key": k, "value": v, "variable_type": "env_var"} for k, v in new.variables]
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "SELECT COALESCE(MAX(iid), 0) + 1 FROM ci_pipelines WHERE project_id = ?",
            (new.project_id,),
        )
        row = await cur.fetchone()
        iid = int(row[0]) if row else 1
        cur = await conn.execute(
            "INSERT INTO ci_pipelines (project_id, iid, ref, sha, before_sha, tag, source, status,"
            " yaml_errors, user_id, stages, variables, merge_request_iid, source_sha, created_at,"
            " updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.project_id, iid, new.ref, new.sha, new.before_sha, int(new.tag), new.source,
                status, yaml_errors, new.user_id,
                json.dumps(config.used_stages if config else []), json.dumps(variables),
                new.merge_request_iid, new.source_sha, stamp, stamp, finished,
            ),
        )  # fmt: skip
        pipeline_id = int(cur.lastrowid or 0)
        for spec in config.jobs if config else []:
            await conn.execute(
                "INSERT INTO ci_jobs (pipeline_id, project_id, name, stage, stage_idx, spec,"
                " status, allow_failure, run_when, user_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?)",
                (
                    pipeline_id, new.project_id, spec.name, spec.stage, spec.stage_idx,
                    json.dumps(spec.as_json()), int(spec.allow_failure), spec.when,
                    new.user_id, stamp, stamp,
                ),
            )  # fmt: skip
    return pipeline_id


async def pipeline_by_id(sim: Sim, pipeline_id: int) -> sqlite3.Row | None:
    return await sim.store.fetchone("SELECT * FROM ci_pipelines WHERE id = ?", (pipeline_id,))


async def job_by_id(sim: Sim, job_id: int) -> sqlite3.Row | None:
    return await sim.store.fetchone("SELECT * FROM ci_jobs WHERE id = ?", (job_id,))


async def pipeline_jobs(
    sim: Sim, pipeline_id: int, *, include_retried: bool = False
) -> list[sqlite3.Row]:
    retried = "" if include_retried else " AND retried = 0"
    return await sim.store.fetchall(
        f"SELECT * FROM ci_jobs WHERE pipeline_id = ?{retried} ORDER BY stage_idx, id",
        (pipeline_id,),
    )


async def latest_for_sha(sim: Sim, project_id: int, sha: str) -> sqlite3.Row | None:
    return await sim.store.fetchone(
        "SELECT * FROM ci_pipelines WHERE project_id = ? AND sha = ? ORDER BY id DESC LIMIT 1",
        (project_id, sha),
    )


async def head_pipeline_row(
    sim: Sim, project_id: int, head_sha: str, mr_iid: int | None
) -> sqlite3.Row | None:
    """The newest pipeline that tests ``head_sha``: one on that commit, or a merged-results
    pipeline of MR ``mr_iid`` built from it (GitLab's ``head_pipeline`` of a merge request)."""
    return await sim.store.fetchone(
        "SELECT * FROM ci_pipelines WHERE project_id = ? AND"
        " (sha = ? OR (merge_request_iid = ? AND source_sha = ?)) ORDER BY id DESC LIMIT 1",
        (project_id, head_sha, mr_iid, head_sha),
    )


async def merge_pipelines_enabled(sim: Sim, project_id: int) -> bool:
    row = await sim.store.fetchone(
        "SELECT merge_pipelines_enabled FROM ci_project_settings WHERE project_id = ?",
        (project_id,),
    )
    return bool(row and row["merge_pipelines_enabled"])


async def save_merge_pipelines_enabled(sim: Sim, project_id: int, enabled: bool) -> None:
    async with sim.store.write() as conn:
        await conn.execute(
            "INSERT OR REPLACE INTO ci_project_settings (project_id, merge_pipelines_enabled)"
            " VALUES (?, ?)",
            (project_id, int(enabled)),
        )


async def set_job_statuses(sim: Sim, changes: dict[int, str]) -> None:
    """Move ``created`` jobs to ``pending`` (queued now), ``manual`` or ``skipped``."""
    if not changes:
        return
    stamp = now_iso()
    async with sim.store.write() as conn:
        for job_id, status in changes.items():
            await conn.execute(
                "UPDATE ci_jobs SET status = ?, updated_at = ?,"
                " queued_at = CASE WHEN ? = 'pending' THEN ? ELSE queued_at END,"
                " finished_at = CASE WHEN ? = 'skipped' THEN ? ELSE finished_at END"
                " WHERE id = ? AND status = 'created'",
                (status, stamp, status, stamp, status, stamp, job_id),
            )


async def play_job(sim: Sim, job_id: int, user_id: int) -> bool:
    """``manual`` -> ``pending``, played by ``user_id``; False when it is not waiting to be
    played."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "UPDATE ci_jobs SET status = 'pending', user_id = ?, queued_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'manual' AND retried = 0",
            (user_id, stamp, stamp, job_id),
        )
        if cur.rowcount == 1:
            await conn.execute(
                "UPDATE ci_pipelines SET finished_at = NULL, updated_at = ?"
                " WHERE id = (SELECT pipeline_id FROM ci_jobs WHERE id = ?)",
                (stamp, job_id),
            )
        return cur.rowcount == 1


async def start_job(sim: Sim, job_id: int) -> bool:
    """``pending`` -> ``running``; False when the job is no longer pending (canceled)."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "UPDATE ci_jobs SET status = 'running', started_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (stamp, stamp, job_id),
        )
        return cur.rowcount == 1


async def finish_job(
    sim: Sim,
    job_id: int,
    status: str,
    *,
    failure_reason: str | None = None,
    trace: str | None = None,
    test_cases: list[dict[str, Any]] | None = None,
    suite_error: str | None = None,
) -> None:
    """Record a job's end, unless it already ended (a cancel can race a finish)."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        await conn.execute(
            "UPDATE ci_jobs SET status = ?, failure_reason = ?, trace = COALESCE(?, trace),"
            " test_cases = ?, suite_error = ?, finished_at = ?, updated_at = ?"
            " WHERE id = ? AND status IN ('created', 'pending', 'running')",
            (
                status, failure_reason, trace,
                json.dumps(test_cases) if test_cases is not None else None,
                suite_error, stamp, stamp, job_id,
            ),
        )  # fmt: skip


async def clone_for_retry(sim: Sim, job: sqlite3.Row, user_id: int) -> int:
    """Mark ``job`` retried and add its fresh copy (``created``); later stages' skipped
    jobs go back to ``created`` so they run if the retry passes. Returns the new job id."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        await conn.execute("UPDATE ci_jobs SET retried = 1 WHERE id = ?", (job["id"],))
        cur = await conn.execute(
            "INSERT INTO ci_jobs (pipeline_id, project_id, name, stage, stage_idx, spec, status,"
            " allow_failure, run_when, user_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?)",
            (
                job["pipeline_id"], job["project_id"], job["name"], job["stage"],
                job["stage_idx"], job["spec"], job["allow_failure"], job["run_when"],
                user_id, stamp, stamp,
            ),
        )  # fmt: skip
        await conn.execute(
            "UPDATE ci_jobs SET status = 'created', finished_at = NULL, updated_at = ?"
            " WHERE pipeline_id = ? AND retried = 0 AND status = 'skipped' AND stage_idx > ?",
            (stamp, job["pipeline_id"], job["stage_idx"]),
        )
        await conn.execute(
            "UPDATE ci_pipelines SET finished_at = NULL, updated_at = ? WHERE id = ?",
            (stamp, job["pipeline_id"]),
        )
        return int(cur.lastrowid or 0)


async def cancel_waiting_jobs(sim: Sim, pipeline_id: int, job_ids: set[int]) -> None:
    """Those of ``job_ids`` still ``created``, ``pending`` or ``manual`` become ``canceled``
    (running ones are stopped by the engine, which records them itself)."""
    stamp = now_iso()
    async with sim.store.write() as conn:
        for job_id in sorted(job_ids):
            await conn.execute(
                "UPDATE ci_jobs SET status = 'canceled', finished_at = ?, updated_at = ?"
                " WHERE id = ? AND pipeline_id = ? AND status IN ('created', 'pending', 'manual')",
                (stamp, stamp, job_id, pipeline_id),
            )


async def refresh_pipeline_status(sim: Sim, pipeline_id: int) -> tuple[str, str] | None:
    """Recompute the pipeline's status from its jobs; returns (old, new) when it changed."""
    pipeline = await pipeline_by_id(sim, pipeline_id)
    jobs = await pipeline_jobs(sim, pipeline_id)
    if pipeline is None or not jobs:
        return None
    status = composite_status(job_state(job) for job in jobs) or "skipped"
    old = str(pipeline["status"])
    if status == old:
        return None
    stamp = now_iso()
    started = [job["started_at"] for job in jobs if job["started_at"]]
    finished = stamp if status not in ("created", "pending", "running") else None
    async with sim.store.write() as conn:
        await conn.execute(
            "UPDATE ci_pipelines SET status = ?, updated_at = ?, finished_at = ?,"
            " started_at = COALESCE(started_at, ?) WHERE id = ?",
            (status, stamp, finished, min(started) if started else None, pipeline_id),
        )
    return old, status


async def unfinished_pipelines(sim: Sim) -> list[sqlite3.Row]:
    return await sim.store.fetchall(
        "SELECT * FROM ci_pipelines WHERE status IN ('created', 'pending', 'running') ORDER BY id"
    )
