"""A project's recent CI history as test verdicts, read from GitLab.

The window is the newest ``window`` finished pipelines of every ref (the default branch's
and merge requests' alike). For each pipeline every job is read, retried ones included, and
each job that uploaded a JUnit report gives its verdicts from the report file in its
artifacts. A finished job never changes, so its verdicts are kept in memory by job id (while
it is in the window): the
next scan reads only the jobs it has not seen (a pipeline's job list is read again, since a
retry adds a job to a finished pipeline).
"""

from __future__ import annotations

import logging

from roles.flaky.detect import Verdict, verdicts_of
from roles.ports import CiReads

log = logging.getLogger(__name__)


class HistoryReader:
    def __init__(self, ci: CiReads, *, junit_path: str, window: int) -> None:
        self.ci = ci
        self.junit_path = junit_path
        self.window = window
        self._by_job: dict[tuple[str, int], list[Verdict]] = {}

    async def verdicts(self, project: str) -> list[Verdict]:
        found: list[Verdict] = []
        seen: set[tuple[str, int]] = set()
        for pipeline in await self.ci.recent_pipelines(project, limit=self.window):
            for job in await self.ci.jobs(project, pipeline.id):
                if not job.finished or not job.has_junit:
                    continue
                key = (project, job.id)
                seen.add(key)
                if key not in self._by_job:
                    cases = await self.ci.job_report(project, job.id, self.junit_path)
                    self._by_job[key] = verdicts_of(
                        cases,
                        sha=pipeline.sha,
                        pipeline=pipeline.id,
                        job=job.id,
                        at=job.finished_at or job.created_at,
                        job_name=job.name,
                    )
                found.extend(self._by_job[key])
        # Jobs that left the window are forgotten, so the memory stays bounded by it.
        for key in [k for k in self._by_job if k[0] == project and k not in seen]:
            del self._by_job[key]
        log.debug("flaky detector: %s verdicts in %s", len(found), project)
        return found
