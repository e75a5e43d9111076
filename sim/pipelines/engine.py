"""The pipeline engine: creates pipelines (from pushes, merge requests and the API), moves
jobs through their stages, runs them on the built-in runner, and retries, plays and cancels
them.

An open MR's own pipelines (detached, and merged-results ones for a project with
``merge_pipelines_enabled``, which then replace the branch pipeline of a push to the MR's
source branch, as the usual ``workflow:rules`` do) are made in :mod:`sim.merge_requests.pipelines`.

Jobs run as background asyncio tasks, at most ``config.ci_concurrency`` at once; a request
never waits for a job. Every status change is written first, then announced (Pipeline Hook
and Job Hook events), so whoever hears of it can read it back. Stage decisions are taken
under one lock, which is never held while a job runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from sim.core.base import Sim, project_by_ref
from sim.core.events import SimEvent
from sim.git.hooks import ZERO_SHA
from sim.git.repos import GIT_KEY
from sim.merge_requests.pipelines import detached, merged_results
from sim.merge_requests.records import open_mr_for_source
from sim.pipelines.ci_config import CI_FILE, CiConfigError, parse_ci_config
from sim.pipelines.ci_status import RETRYABLE, advance
from sim.pipelines.hooks import emit_job_event, emit_pipeline_event
from sim.pipelines.records import (
    NewPipeline,
    cancel_waiting_jobs,
    clone_for_retry,
    finish_job,
    insert_pipeline,
    job_by_id,
    job_spec,
    job_state,
    latest_for_sha,
    merge_pipelines_enabled,
    pipeline_by_id,
    pipeline_jobs,
    play_job,
    refresh_pipeline_status,
    set_job_statuses,
    start_job,
    unfinished_pipelines,
)
from sim.pipelines.runner import JobRun, Trace, run_job
from sim.pipelines.variables import job_variables

log = logging.getLogger(__name__)
_SKIP_CI = re.compile(r"\[(?:ci skip|skip ci)\]", re.IGNORECASE)


UNFINISHED_OR_MANUAL = ("created", "pending", "running", "manual")  # what a cancel ends


class PipelineRejected(Exception):
    """The API cannot create this pipeline; ``str(error)`` says why, in GitLab's words."""


class JobNotRetryable(Exception):
    pass


class JobNotPlayable(Exception):
    pass


class PipelineEngine:
    def __init__(self, app: web.Application, sim: Sim) -> None:
        self._app = app
        self._sim = sim
        self._lock = asyncio.Lock()  # stage decisions and status refreshes
        self._slots = asyncio.Semaphore(max(1, sim.config.ci_concurrency))
        self._tasks: dict[int, asyncio.Task[None]] = {}  # job id -> its run
        self._traces: dict[int, Trace] = {}  # running job id -> its live log
        self._creating: Counter[tuple[int, str]] = Counter()  # (project, sha) being created
        self._busy = 0  # handlers that may still create a pipeline or start a job
        self._deferred: set[asyncio.Task[None]] = set()  # processing after a retry
        self._closing = False

    # ------------------------------------------------------------ creation

    async def create(
        self,
        project: sqlite3.Row,
        user_id: int | None,
        *,
        ref: str,
        sha: str,
        before_sha: str = ZERO_SHA,
        source: str,
        tag: bool = False,
        variables: Iterable[tuple[str, str]] = (),
        merge_request_iid: int | None = None,
        source_sha: str | None = None,
        strict: bool = False,
    ) -> int | None:
        """Create the pipeline of ``sha`` if it has a CI configuration; returns its id.

        ``strict`` (the API) raises :class:`PipelineRejected` where a push would create
        nothing (no configuration) or a failed pipeline (an invalid one), and ignores
        ``[skip ci]``."""
        new = NewPipeline(
            int(project["id"]), ref, sha, before_sha, source, user_id, tag,
            tuple(variables), merge_request_iid, source_sha,
        )  # fmt: skip
        content = await self._app[GIT_KEY].read_file(project, sha, CI_FILE)
        if content is None:
            if strict:
                raise PipelineRejected("Missing CI config file")
            return None
        try:
            config = parse_ci_config(content.decode("utf-8", "replace"))
        except CiConfigError as error:
            if strict:
                raise PipelineRejected(str(error)) from error
            pipeline_id = await insert_pipeline(
                self._sim, new, None, status="failed", yaml_errors=str(error)
            )
            await self._announce_pipeline(pipeline_id)
            return pipeline_id
        if not strict and await self._skips_ci(project, sha):
            pipeline_id = await insert_pipeline(self._sim, new, None, status="skipped")
            await self._announce_pipeline(pipeline_id)
            return pipeline_id
        pipeline_id = await insert_pipeline(self._sim, new, config)
        log.info("pipeline %s created: project=%s ref=%s sha=%s", pipeline_id, new.project_id,
                 ref, sha[:8])  # fmt: skip
        await self.process(pipeline_id)
        return pipeline_id

    async def _skips_ci(self, project: sqlite3.Row, sha: str) -> bool:
        info = await self._app[GIT_KEY].commit_info(project, sha)
        return _SKIP_CI.search(str(info["message"])) is not None

    async def on_push(self, event: SimEvent) -> None:
        """A branch or tag moved: its new head gets a ``push`` pipeline."""
        payload = event.payload
        after, ref = str(payload.get("after") or ZERO_SHA), str(payload.get("ref") or "")
        if after == ZERO_SHA or self._closing:
            return
        key = (event.project_id, after)
        self._creating[key] += 1  # before any await: a merge request event checks it
        self._busy += 1
        try:
            project = await project_by_ref(self._sim, str(event.project_id))
            if project is None:
                return
            branch = ref.removeprefix("refs/heads/")
            if ref.startswith("refs/heads/") and await merge_pipelines_enabled(
                self._sim, event.project_id
            ):
                mr = await open_mr_for_source(self._sim, event.project_id, branch)
                if mr is not None:
                    await merged_results(
                        self, self._app[GIT_KEY], project, payload.get("user_id"),
                        iid=int(mr["iid"]), target=str(mr["target_branch"]), head=after,
                    )  # fmt: skip
                    return
            await self.create(
                project,
                payload.get("user_id"),
                ref=ref.removeprefix("refs/heads/").removeprefix("refs/tags/"),
                sha=after,
                before_sha=str(payload.get("before") or ZERO_SHA),
                source="push",
                tag=ref.startswith("refs/tags/"),
            )
        finally:
            self._busy -= 1
            self._creating[key] -= 1
            if self._creating[key] <= 0:
                del self._creating[key]

    async def on_merge_request(self, event: SimEvent) -> None:
        """An opened (or reopened) merge request gets a ``merge_request_event`` pipeline: a
        merged-results one when the project has them, else one on
        ``refs/merge-requests/<iid>/head`` if its head has no pipeline yet."""
        attributes = event.payload.get("object_attributes") or {}
        sha = str((attributes.get("last_commit") or {}).get("id") or "")
        if attributes.get("action") not in ("open", "reopen") or not sha or self._closing:
            return
        merged = await merge_pipelines_enabled(self._sim, event.project_id)
        if (event.project_id, sha) in self._creating and not merged:
            return
        self._busy += 1
        try:
            if not merged and await latest_for_sha(self._sim, event.project_id, sha) is not None:
                return
            project = await project_by_ref(self._sim, str(event.project_id))
            if project is None:
                return
            user = (event.payload.get("user") or {}).get("id")
            iid, target = int(attributes["iid"]), str(attributes.get("target_branch") or "")
            if merged:
                repos = self._app[GIT_KEY]
                await merged_results(self, repos, project, user, iid=iid, target=target, head=sha)
                return
            await detached(self, project, user, iid, sha)
        finally:
            self._busy -= 1

    # ------------------------------------------------------------ stages

    async def process(self, pipeline_id: int) -> None:
        """Start or skip the jobs whose earlier stages are done; refresh the status."""
        self._busy += 1  # not idle until the jobs made pending here have their tasks
        try:
            async with self._lock:
                jobs = await pipeline_jobs(self._sim, pipeline_id)
                changes = advance([job_state(job) for job in jobs])
                await set_job_statuses(self._sim, changes)
                changed = await refresh_pipeline_status(self._sim, pipeline_id)
            # Announced before any job starts, so each payload shows the status it announces.
            if changed:
                await self._announce_pipeline(pipeline_id)
            for job_id, status in changes.items():
                await self._announce_job(job_id)
                if status == "pending":
                    self._start(pipeline_id, job_id)
        finally:
            self._busy -= 1

    async def _refresh(self, pipeline_id: int) -> None:
        async with self._lock:
            changed = await refresh_pipeline_status(self._sim, pipeline_id)
        if changed:
            await self._announce_pipeline(pipeline_id)

    def _start(self, pipeline_id: int, job_id: int) -> None:
        if self._closing or job_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(
            self._run(pipeline_id, job_id), name=f"sim-ci-job-{job_id}"
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, pipeline_id: int, job_id: int) -> None:
        trace = Trace()
        try:
            async with self._slots:
                if not await start_job(self._sim, job_id):
                    return  # canceled while it waited for a slot
                self._traces[job_id] = trace
                await self._announce_job(job_id)
                await self._refresh(pipeline_id)
                outcome = await run_job(await self._job_run(job_id), self._build_dir(job_id), trace)
                await finish_job(
                    self._sim, job_id, outcome.status, failure_reason=outcome.failure_reason,
                    trace=trace.text(), test_cases=outcome.test_cases,
                    suite_error=outcome.suite_error,
                )  # fmt: skip
        except asyncio.CancelledError:
            trace.line("ERROR: Job failed: canceled")
            await finish_job(self._sim, job_id, "canceled", trace=trace.text())
            raise
        except Exception as error:  # a broken job must not stall its pipeline
            log.exception("sim CI job %s failed to run", job_id)
            trace.line(f"ERROR: Job failed (system failure): {error}")
            await finish_job(
                self._sim, job_id, "failed", failure_reason="runner_system_failure",
                trace=trace.text(),
            )  # fmt: skip
        finally:
            self._traces.pop(job_id, None)
        await self._announce_job(job_id)
        await self.process(pipeline_id)

    async def _job_run(self, job_id: int) -> JobRun:
        job = await job_by_id(self._sim, job_id)
        pipeline = await pipeline_by_id(self._sim, int(job["pipeline_id"])) if job else None
        project = await project_by_ref(self._sim, str(pipeline["project_id"])) if pipeline else None
        if job is None or pipeline is None or project is None:
            raise LookupError(f"job {job_id} lost its pipeline or project")
        spec = job_spec(job)
        repos, sha = self._app[GIT_KEY], str(pipeline["sha"])

        async def checkout(dest: Path) -> Path:
            return await repos.checkout(project, sha, dest)

        return JobRun(
            job_id=job_id,
            spec=spec,
            sha=sha,
            ref=str(pipeline["ref"]),
            variables=await job_variables(self._sim, project, pipeline, job, spec),
            timeout=spec.timeout or self._sim.config.ci_job_timeout,
            checkout=checkout,
        )

    def _build_dir(self, job_id: int) -> Path:
        return self._sim.config.state_dir / "ci-builds" / str(job_id)

    def live_trace(self, job_id: int) -> str | None:
        trace = self._traces.get(job_id)
        return trace.text() if trace is not None else None

    # ------------------------------------------------------------ retry and cancel

    async def retry_job(self, job_id: int, user_id: int) -> int:
        """A fresh copy of a finished job in the same pipeline; returns the new job's id."""
        async with self._lock:
            job = await job_by_id(self._sim, job_id)
            if job is None or job["retried"] or job["status"] not in RETRYABLE:
                raise JobNotRetryable(f"job {job_id} is not retryable")
            new_id = await clone_for_retry(self._sim, job, user_id)
        if self._sim.config.ci_retry_processing_delay > 0:
            self._process_later(int(job["pipeline_id"]), self._sim.config.ci_retry_processing_delay)
        else:
            await self.process(int(job["pipeline_id"]))
        return new_id

    def _process_later(self, pipeline_id: int, delay: float) -> None:
        self._busy += 1  # wait_idle covers the deferred processing too

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
                if not self._closing:
                    await self.process(pipeline_id)
            finally:
                self._busy -= 1

        task = asyncio.get_running_loop().create_task(later())
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)

    async def play(self, job_id: int, user_id: int) -> None:
        """Run a manual job (``POST /jobs/:id/play``): it is queued at once, and the stages
        it held go on once it succeeds."""
        async with self._lock:
            job = await job_by_id(self._sim, job_id)
            if job is None or not await play_job(self._sim, job_id, user_id):
                raise JobNotPlayable(f"job {job_id} is not a manual job waiting to be played")
            pipeline_id = int(job["pipeline_id"])
            changed = await refresh_pipeline_status(self._sim, pipeline_id)
        if changed:
            await self._announce_pipeline(pipeline_id)
        await self._announce_job(job_id)
        self._start(pipeline_id, job_id)

    async def retry_pipeline(self, pipeline_id: int, user_id: int) -> None:
        """Retry every failed or canceled job of the pipeline."""
        async with self._lock:
            for job in await pipeline_jobs(self._sim, pipeline_id):
                if job["status"] in ("failed", "canceled"):
                    await clone_for_retry(self._sim, job, user_id)
        await self.process(pipeline_id)

    async def cancel(self, pipeline_id: int, job_ids: Iterable[int] | None = None) -> None:
        """Cancel the pipeline's unfinished jobs (or only ``job_ids``): waiting ones at
        once, running ones by stopping their processes."""
        async with self._lock:
            jobs = await pipeline_jobs(self._sim, pipeline_id)
            chosen = {int(job["id"]) for job in jobs} if job_ids is None else set(job_ids)
            await cancel_waiting_jobs(self._sim, pipeline_id, chosen)
        tasks = [task for job_id, task in self._tasks.items() if job_id in chosen]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in jobs:
            if int(job["id"]) in chosen and job["status"] in UNFINISHED_OR_MANUAL:
                await self._announce_job(int(job["id"]))
        await self.process(pipeline_id)

    # ------------------------------------------------------------ announcing, lifecycle

    async def _announce_pipeline(self, pipeline_id: int) -> None:
        if not self._closing:
            await emit_pipeline_event(self._app, pipeline_id)

    async def _announce_job(self, job_id: int) -> None:
        if not self._closing:
            await emit_job_event(self._app, job_id)

    async def recover(self, _: web.Application) -> None:
        """After a restart: jobs that were running are lost (failed, as GitLab fails a job
        whose runner vanished); waiting ones run again."""
        for pipeline in await unfinished_pipelines(self._sim):
            for job in await pipeline_jobs(self._sim, int(pipeline["id"])):
                if job["status"] == "running":
                    await finish_job(
                        self._sim, int(job["id"]), "failed",
                        failure_reason="runner_system_failure",
                        trace=job["trace"] + "ERROR: the simulator stopped while the job ran\n",
                    )  # fmt: skip
                elif job["status"] == "pending":
                    self._start(int(pipeline["id"]), int(job["id"]))
            await self.process(int(pipeline["id"]))

    async def close(self, _: web.Application) -> None:
        """Stop every job (their processes are killed) before the store closes."""
        self._closing = True
        for deferred in list(self._deferred):
            deferred.cancel()
        tasks = list(self._tasks.values())
        log.debug("closing: cancelling %d job tasks", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self, seconds: float) -> bool:
        """True once no pipeline is being created and no job is queued or running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._tasks or self._busy:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True


CI_KEY = web.AppKey("ci_engine", PipelineEngine)


def engine_of(app: web.Application) -> PipelineEngine:
    return app[CI_KEY]
