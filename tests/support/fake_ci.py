"""The pipeline and job calls of the in-memory ``MergeRequests`` port
(``fake_merge_requests.FakeMergeRequests`` inherits them), over the scripted CI of
``fake_ci_state.FakeCi``. Each goes through the real ``AuditedCalls`` under the operation
name the real ``forge.merge_gateway.MergeGateway`` uses (a read counted as
``gitlab.pipeline.jobs`` on either), and its answer is read by the gateway's own functions:
``pipeline_params`` builds the listing's query, ``read_jobs``, ``read_report`` and
``read_trace`` defang what the MR's code wrote. ``tests/contract/test_ci_contract.py`` holds
them to the gateway against the simulator's runner.

A retry answers at once with the new pending job, as GitLab does; the test then finishes it
(``state.ci.finish``): the fake runs nothing by itself.
"""

from __future__ import annotations

from typing import Any

from forge.calls import AuditedCalls
from forge.ci_types import Job, TestReport
from forge.client import ForgeNotFound
from forge.merge_gateway import PER_PAGE, pipeline_params, read_jobs, read_report, read_trace
from forge.types import Pipeline
from tests.support.fake_ci_state import FakeJob, FakePipeline
from tests.support.fake_state import FakeGitLab


class FakeCiCalls:
    state: FakeGitLab
    calls: AuditedCalls

    async def pipelines(
        self,
        project: str,
        *,
        ref: str | None = None,
        sha: str | None = None,
        status: str | None = None,
    ) -> list[Pipeline]:
        """GitLab's listing with the query the gateway sends: newest first, one page."""
        params = pipeline_params(ref, sha, status)
        ci = self.state.ci

        wanted = {key: params[key] for key in ("ref", "sha", "status") if key in params}

        def list_(_: Any) -> list[dict[str, Any]]:
            found = [ci.pipeline_json(p) for p in ci.pipelines.values() if p.project == project]
            found = [p for p in found if all(p[key] == value for key, value in wanted.items())]
            found.sort(key=lambda p: int(p["id"]), reverse=params["sort"] == "desc")
            return found[: params["per_page"]]

        found = await self.calls.read("pipeline.list", project, params, list_)
        return [Pipeline.of(item) for item in found]

    async def pipeline(self, project: str, pipeline_id: int) -> Pipeline:
        def get(_: Any) -> dict[str, Any]:
            return self.state.ci.pipeline_json(self._pipeline(project, pipeline_id), full=True)

        target = f"{project}/pipeline/{pipeline_id}"
        return Pipeline.of(await self.calls.read("pipeline.get", target, {}, get))

    async def mr_pipelines(self, project: str, iid: int) -> list[Pipeline]:
        """Newest first: the pipelines of the MR's commits on its source branch (the fake
        knows them from the pushes' parents) and the MR's own merge request pipelines."""
        ci = self.state.ci

        def list_(_: Any) -> list[dict[str, Any]]:
            mr = self.state.mr(project, iid)
            base = self.state.branches.get((project, mr["target_branch"]))
            commits = ci.commits_between(mr["sha"], base)
            found = [
                pipeline
                for pipeline in ci.pipelines.values()
                if pipeline.project == project
                and (
                    (pipeline.ref == mr["source_branch"] and pipeline.sha in commits)
                    or pipeline.mr_iid == iid
                )
            ]
            return [ci.pipeline_json(p) for p in sorted(found, key=lambda p: -p.id)]

        found = await self.calls.read(
            "mr.pipelines", f"{project}!{iid}", {"per_page": PER_PAGE}, list_
        )
        return [Pipeline.of(item) for item in found]

    async def commit_parents(self, project: str, sha: str) -> list[str]:
        def get(_: Any) -> list[str]:
            if sha not in self.state.ci.parents:
                raise ForgeNotFound("commit.get", "404 Commit Not Found", 404)
            return list(self.state.ci.parents[sha])

        return await self.calls.read("commit.get", f"{project}@{sha}", {}, get)

    async def test_report(self, project: str, pipeline_id: int) -> TestReport:
        def get(_: Any) -> dict[str, Any]:
            return self.state.ci.report_json(self._pipeline(project, pipeline_id).id)

        target = f"{project}/pipeline/{pipeline_id}"
        return read_report(await self.calls.read("pipeline.test_report", target, {}, get))

    async def jobs(self, project: str, pipeline_id: int) -> list[Job]:
        ci = self.state.ci

        def list_(_: Any) -> list[dict[str, Any]]:
            pipeline = self._pipeline(project, pipeline_id)
            return [ci.job_json(job) for job in ci.jobs_of(pipeline.id)]

        target = f"{project}/pipeline/{pipeline_id}"
        return read_jobs(await self.calls.read("pipeline.jobs", target, {}, list_))

    async def job_trace(self, project: str, job_id: int) -> str:
        def trace(_: Any) -> str:
            return self._job(project, job_id).trace

        return read_trace(await self.calls.read("job.trace", f"{project}/job/{job_id}", {}, trace))

    async def retry_job(self, project: str, job_id: int) -> Job:
        """A new pending run of the job (GitLab's 403 for one already retried)."""

        def retry(_: Any, __: dict[str, Any]) -> Job:
            self._job(project, job_id)
            return Job.of(self.state.ci.job_json(self.state.ci.retry(job_id)))

        return await self.calls.write("job.retry", f"{project}/job/{job_id}", {}, retry)

    def _pipeline(self, project: str, pipeline_id: int) -> FakePipeline:
        pipeline = self.state.ci.pipeline(pipeline_id)
        if pipeline.project != project:  # another project's pipeline: not found there
            raise ForgeNotFound("pipeline.get", "404 Not found", 404)
        return pipeline

    def _job(self, project: str, job_id: int) -> FakeJob:
        job = self.state.ci.job(job_id)
        self._pipeline(project, job.pipeline_id)
        return job
