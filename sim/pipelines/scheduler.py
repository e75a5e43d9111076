"""The pipeline engine's job scheduling: stage decisions, jobs run as background tasks on the
built-in runner, live traces, recovery at start, and a clean close. The base of
:class:`sim.pipelines.engine.PipelineEngine`."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from aiohttp import web

from sim.core.base import Sim, project_by_ref
from sim.git.repos import GIT_KEY
from sim.pipelines.ci_status import advance
from sim.pipelines.hooks import emit_job_event, emit_pipeline_event
from sim.pipelines.records import (
    finish_job,
    job_by_id,
    job_spec,
    job_state,
    pipeline_by_id,
    pipeline_jobs,
    refresh_pipeline_status,
    set_job_statuses,
    start_job,
    unfinished_pipelines,
)
from sim.pipelines.runner import JobRun, Trace, run_job
from sim.pipelines.variables import job_variables

log = logging.getLogger(__name__)


class JobScheduler:
    """Moves a pipeline's jobs through their stages and runs them in the background, at most
    ``ci_concurrency`` at once; a status change is written first, then announced. Stage
    decisions are taken under one lock, never held while a job runs."""

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
