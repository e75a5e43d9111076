"""Runs of one test's job on one commit, for the reproducer and the validator.

GitLab re-runs a job by retrying the newest job of that name in its pipeline: the retry runs
the same commit with the same variables. Each run is waited for, its JUnit report read from
its artifacts, and the test's verdict taken from it (a run whose report lacks the test
counts as a failure: the job died before the test could pass). The runs are listed in one
note on the issue, edited as each run finishes, so a human sees the figures grow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from forge.ci_types import Job
from forge.client import ForgeNotFound
from forge.gateway import note_marker
from forge.sink import seal, unmark
from forge.types import Note
from roles.ports import CiReads, IssueTracker, MergeRequests

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Run:
    job: int
    passed: bool
    web_url: str
    seconds: float | None = None  # the job's duration, as GitLab reports it

    def line(self, n: int) -> str:
        took = "" if self.seconds is None else f" in {self.seconds:.1f} s"
        verdict = "passed" if self.passed else "FAILED"
        return f"{n}. job [{self.job}]({self.web_url}): {verdict}{took}"


class JobRunner:
    def __init__(
        self,
        ci: CiReads,
        merges: MergeRequests,
        *,
        junit_path: str,
        poll: float = 2.0,
        patience: float = 3600.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.ci = ci
        self.merges = merges
        self.junit_path = junit_path
        self.poll = poll
        self.patience = patience
        self.sleep = sleep

    async def run_once(self, project: str, pipeline: int, job_name: str, test: str) -> Run:
        """Retry the newest ``job_name`` of ``pipeline`` and wait for its verdict on ``test``."""
        newest = max(await self.job_ids(project, pipeline, job_name))
        retried = await self.merges.retry_job(project, newest)
        return await self.verdict(project, retried.id, test)

    async def job_ids(self, project: str, pipeline: int, job_name: str) -> list[int]:
        """Every job named ``job_name`` in ``pipeline``, retried ones too, oldest first."""
        jobs = await self.ci.jobs(project, pipeline)
        return sorted(job.id for job in jobs if job.name == job_name)

    async def verdict(self, project: str, job_id: int, test: str) -> Run:
        """Wait for the job to finish; its verdict on ``test`` from its JUnit report."""
        job = await self._finished(project, job_id)
        cases = await self.ci.job_report(project, job_id, self.junit_path)
        named = [case for case in cases if case.full_name == test]
        passed = bool(named) and named[-1].status == "success"  # the last one reported
        return Run(job_id, passed, job.web_url, job.duration)

    async def _finished(self, project: str, job_id: int) -> Job:
        waited = 0.0
        while True:
            job = await self.ci.job(project, job_id)
            if job.finished:
                return job
            if waited >= self.patience:
                raise TimeoutError(f"job {job_id} of {project} did not finish in {waited:g}s")
            await self.sleep(self.poll)
            waited += self.poll


class LiveNote:
    """The note carrying ``key`` on one issue: found or created by its first :meth:`show`,
    then edited in place, so a run of k updates lists the issue's notes once, not k times."""

    def __init__(self, gateway: IssueTracker, project: str, iid: int, key: str) -> None:
        self.gateway, self.project, self.iid, self.key = gateway, project, iid, key
        self._note: Note | None = None

    async def show(self, body: str) -> None:
        """The note now reads ``body`` (created the first time)."""
        if self._note is None:
            self._note = await self.gateway.upsert_note(self.project, self.iid, self.key, body)
        text = f"{body}\n\n{seal(note_marker(self.key))}"
        if self._note.body == unmark(text):  # the body as GitLab keeps it
            return
        try:
            self._note = await self.gateway.edit_note(self.project, self.iid, self._note.id, text)
        except ForgeNotFound:  # someone deleted it meanwhile: post it again
            self._note = None
            await self.show(body)


async def live_note(gateway: IssueTracker, project: str, iid: int, key: str, body: str) -> None:
    """The note carrying ``key`` now reads ``body`` (created the first time)."""
    await LiveNote(gateway, project, iid, key).show(body)
