"""Reads of a project's CI history for the flaky-test detector: a bounded window of recent
pipelines (paginated), every job of a pipeline with the retried ones, and one job's JUnit
report from its artifacts. Audited like every GitLab call; nothing here writes."""

from __future__ import annotations

from typing import Any

import gitlab

from forge.calls import AuditedCalls
from forge.ci_types import JOB_FINISHED, Job, TestCase
from forge.client import ForgeNotFound
from forge.junit import JunitError, parse_junit
from forge.trust import defang_all
from forge.types import Pipeline

PER_PAGE = 100
FINISHED = JOB_FINISHED  # a pipeline ends in the same states as a job


class CiHistory:
    def __init__(self, calls: AuditedCalls) -> None:
        self.calls = calls

    async def recent_pipelines(self, project: str, *, limit: int) -> list[Pipeline]:
        """The newest ``limit`` finished pipelines of every ref, newest first, one page of at
        most ``PER_PAGE`` at a time (a long-lived project has thousands)."""
        found: list[Pipeline] = []
        page = 1
        while len(found) < limit:
            per_page = min(PER_PAGE, limit - len(found)) if page == 1 else PER_PAGE
            params = {"order_by": "id", "sort": "desc", "per_page": per_page, "page": page}

            def list_(gl: gitlab.Gitlab, params: dict[str, Any] = params) -> list[dict[str, Any]]:
                pipelines = gl.projects.get(project, lazy=True).pipelines
                return [dict(p.attributes) for p in pipelines.list(get_all=False, **params)]

            batch = await self.calls.read("pipeline.list", project, params, list_)
            found.extend(Pipeline.of(p) for p in batch if p.get("status") in FINISHED)
            if len(batch) < per_page:
                break
            page += 1
        return found[:limit]

    async def jobs(self, project: str, pipeline_id: int) -> list[Job]:
        """Every job of the pipeline, retried ones included (``retried`` is not in GitLab's
        job entity: an older job of the same name is the retried one)."""
        params = {"include_retried": True, "per_page": PER_PAGE}

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            pipeline = gl.projects.get(project, lazy=True).pipelines.get(pipeline_id, lazy=True)
            jobs = pipeline.jobs.list(get_all=True, include_retried=True, per_page=PER_PAGE)
            return [dict(job.attributes) for job in jobs]

        jobs = await self.calls.read(
            "pipeline.jobs", f"{project}/pipeline/{pipeline_id}", params, list_
        )
        # Names from the project's CI configuration: untrusted.
        return [Job.of(job) for job in defang_all(jobs)]

    async def job_report(self, project: str, job_id: int, path: str) -> list[TestCase]:
        """The test cases of the JUnit file ``path`` in the job's artifacts; none when the job
        kept no such file or it cannot be read (a job killed before it wrote its report)."""

        def get(gl: gitlab.Gitlab) -> bytes:
            raw = gl.projects.get(project, lazy=True).jobs.get(job_id, lazy=True).artifact(path)
            return raw if isinstance(raw, bytes) else b""

        try:
            data = await self.calls.read(
                "job.artifact", f"{project}/job/{job_id}", {"path": path}, get
            )
        except ForgeNotFound:
            return []
        try:
            cases = defang_all(parse_junit(data))  # the tests' own words: untrusted
        except JunitError:
            return []
        return [TestCase.of(case) for case in cases]

    async def job(self, project: str, job_id: int) -> Job:
        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).jobs.get(job_id).attributes)

        return Job.of(await self.calls.read("job.get", f"{project}/job/{job_id}", {}, get))

    async def file_at(self, project: str, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``; None when there is no such file."""

        def get(gl: gitlab.Gitlab) -> bytes:
            raw = gl.projects.get(project, lazy=True).files.raw(file_path=path, ref=ref)
            return raw if isinstance(raw, bytes) else b""

        try:
            data = await self.calls.read("file.raw", f"{project}@{ref}:{path}", {}, get)
        except ForgeNotFound:
            return None
        return data.decode("utf-8", "replace")
