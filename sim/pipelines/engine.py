"""The pipeline engine: creates pipelines (from pushes, merge requests and the API), and
retries, plays and cancels them; moving jobs through their stages and running them on the
built-in runner is its base, :class:`sim.pipelines.scheduler.JobScheduler`.

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
from collections.abc import Iterable

from aiohttp import web

from sim.core.base import project_by_ref
from sim.core.events import SimEvent
from sim.git.hooks import ZERO_SHA
from sim.git.repos import GIT_KEY
from sim.merge_requests.pipelines import detached, merged_results
from sim.merge_requests.records import open_mr_for_source
from sim.pipelines.ci_config import CI_FILE, CiConfigError, parse_ci_config
from sim.pipelines.ci_status import RETRYABLE
from sim.pipelines.records import (
    NewPipeline,
    cancel_waiting_jobs,
    clone_for_retry,
    insert_pipeline,
    job_by_id,
    latest_for_sha,
    merge_pipelines_enabled,
    pipeline_jobs,
    play_job,
    refresh_pipeline_status,
)
from sim.pipelines.scheduler import JobScheduler

log = logging.getLogger(__name__)
_SKIP_CI = re.compile(r"\[(?:ci skip|skip ci)\]", re.IGNORECASE)


UNFINISHED_OR_MANUAL = ("created", "pending", "running", "manual")  # what a cancel ends


class PipelineRejected(Exception):
    """The API cannot create this pipeline; ``str(error)`` says why, in GitLab's words."""


class JobNotRetryable(Exception):
    pass


class JobNotPlayable(Exception):
    pass


class PipelineEngine(JobScheduler):
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


CI_KEY = web.AppKey("ci_engine", PipelineEngine)


def engine_of(app: web.Application) -> PipelineEngine:
    return app[CI_KEY]
