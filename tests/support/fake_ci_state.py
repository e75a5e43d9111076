"""The CI half of the in-memory GitLab (``tests/support/fake_state.FakeGitLab.ci``):
pipelines, their jobs (with traces, JUnit test cases and retried copies) and commit parents,
answered as the JSON GitLab's REST API gives, for ``fake_merge_requests.FakeMergeRequests``
to read with the real ``Pipeline.of``, ``Job.of`` and ``TestReport.of``.

The fake runs no CI: a test scripts what GitLab's runner would have done
(:meth:`FakeCi.add_pipeline`, :meth:`FakeCi.add_job`, :meth:`FakeCi.finish`,
:meth:`FakeCi.set_report`). What is not I/O is the simulator's own code, as the label rule
is: a pipeline with jobs has GitLab's composite status of its current jobs
(``sim.pipelines.ci_status``), so retrying a failed job turns its pipeline ``running`` again;
a job is retryable under the simulator's rule; the test report is built by the simulator's
``report_json`` (one suite per job, named after it, retried runs left out).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forge.client import ForgeForbidden, ForgeNotFound
from sim.pipelines.ci_status import ACTIVE, RETRYABLE, JobState, composite_status
from sim.pipelines.junit import report_json, suite_json

URL = "http://fake.gitlab.invalid"


@dataclass
class FakePipeline:
    id: int
    iid: int
    project: str
    sha: str
    ref: str
    source: str
    created_at: str
    status: str  # what it answers while it has no job (e.g. GitLab could not run it)
    mr_iid: int | None = None  # a merge request pipeline (merged results, detached)
    source_sha: str | None = None  # the MR head a merged-results pipeline was built from
    yaml_errors: str | None = None


@dataclass
class FakeJob:
    id: int
    pipeline_id: int
    name: str
    stage: str
    status: str
    created_at: str
    allow_failure: bool = False
    when: str = "on_success"
    trace: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    cases: list[dict[str, Any]] | None = None  # its JUnit report, in GitLab's case shape
    retried: bool = False


def case(
    name: str, classname: str, status: str = "success", output: str | None = None
) -> dict[str, Any]:
    """One JUnit test case as GitLab's test report shows it (``forge.junit.parse_junit``)."""
    return {
        "status": status, "name": name, "classname": classname, "file": None,
        "execution_time": 0.0, "system_output": output, "stack_trace": None,
        "attachment_url": None, "recent_failures": None,
    }  # fmt: skip


def file_diff(path: str, diff: str, *, new_file: bool = False) -> dict[str, Any]:
    """One file of an MR's diff, as ``GET /merge_requests/:iid/diffs`` answers it."""
    return {
        "old_path": path, "new_path": path, "diff": diff, "new_file": new_file,
        "renamed_file": False, "deleted_file": False, "a_mode": "100644", "b_mode": "100644",
        "generated_file": False,
    }  # fmt: skip


@dataclass
class FakeCi:
    """Pipelines and jobs by id, and each known commit's parents."""

    next_id: Callable[[], int]
    now: Callable[[], str]
    pipelines: dict[int, FakePipeline] = field(default_factory=dict)
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)

    # ------------------------------------------------------------ scripting (tests)

    def add_pipeline(
        self,
        project: str,
        sha: str,
        *,
        ref: str,
        status: str = "created",
        source: str = "push",
        mr_iid: int | None = None,
        source_sha: str | None = None,
        yaml_errors: str | None = None,
    ) -> int:
        """A pipeline on ``sha``; its status follows its jobs once it has some."""
        iid = 1 + sum(p.project == project for p in self.pipelines.values())
        pipeline = FakePipeline(
            self.next_id(), iid, project, sha, ref, source, self.now(), status,
            mr_iid, source_sha, yaml_errors,
        )  # fmt: skip
        self.pipelines[pipeline.id] = pipeline
        return pipeline.id

    def add_job(
        self,
        pipeline_id: int,
        name: str,
        *,
        stage: str = "test",
        status: str = "pending",
        trace: str = "",
        allow_failure: bool = False,
        when: str = "on_success",
    ) -> int:
        self.pipeline(pipeline_id)
        job = FakeJob(
            self.next_id(), pipeline_id, name, stage, "created", self.now(),
            allow_failure, when, trace,
        )  # fmt: skip
        self.jobs[job.id] = job
        self.finish(job.id, status)
        return job.id

    def finish(self, job_id: int, status: str, trace: str | None = None) -> None:
        """The runner moves job ``job_id`` to ``status`` (any status, despite the name:
        ``running`` starts it), printing ``trace`` when given."""
        job = self.job(job_id)
        job.status = status
        if status not in ("created", "pending", "manual") and job.started_at is None:
            job.started_at = self.now()
        if status not in ACTIVE and status != "manual":
            job.finished_at = self.now()
        if trace is not None:
            job.trace = trace

    def set_report(self, job_id: int, cases: Sequence[dict[str, Any]]) -> None:
        """Job ``job_id`` uploaded a JUnit report of ``cases`` (see :func:`case`)."""
        self.job(job_id).cases = [dict(item) for item in cases]

    def set_status(self, pipeline_id: int, status: str) -> None:
        """The status of a pipeline without jobs (one with jobs answers theirs)."""
        self.pipeline(pipeline_id).status = status

    def merge_commit(self, *parents: str) -> str:
        """A merge commit of ``parents`` (a merged-results pipeline's commit)."""
        sha = hashlib.sha1(f"merge:{self.next_id()}".encode()).hexdigest()
        self.parents[sha] = list(parents)
        return sha

    # ------------------------------------------------------------ lookups

    def pipeline(self, pipeline_id: int) -> FakePipeline:
        found = self.pipelines.get(pipeline_id)
        if found is None:
            raise ForgeNotFound("pipeline.get", "404 Not found", 404)
        return found

    def job(self, job_id: int) -> FakeJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise ForgeNotFound("job.get", "404 Not found", 404)
        return found

    def jobs_of(self, pipeline_id: int, *, include_retried: bool = False) -> list[FakeJob]:
        """The pipeline's jobs, newest first (GitLab's order); retried runs left out."""
        found = [
            job
            for job in self.jobs.values()
            if job.pipeline_id == pipeline_id and (include_retried or not job.retried)
        ]
        return sorted(found, key=lambda job: -job.id)

    def status_of(self, pipeline: FakePipeline) -> str:
        jobs = self.jobs_of(pipeline.id)
        stages = list(dict.fromkeys(job.stage for job in reversed(jobs)))  # first seen first
        states = [
            JobState(job.id, stages.index(job.stage), job.status, job.when, job.allow_failure)
            for job in jobs
        ]
        return composite_status(states) or pipeline.status

    def head_pipeline(self, project: str, mr_iid: int, head: str) -> dict[str, Any] | None:
        """The newest pipeline testing ``head``: on it, or the MR's merged-results pipeline
        built from it (GitLab's ``head_pipeline``, as the simulator finds it)."""
        found = [
            pipeline
            for pipeline in self.pipelines.values()
            if pipeline.project == project
            and (
                pipeline.sha == head or (pipeline.mr_iid == mr_iid and pipeline.source_sha == head)
            )
        ]
        return self.pipeline_json(max(found, key=lambda p: p.id), full=True) if found else None

    def commits_between(self, head: str, base: str | None) -> list[str]:
        """The first-parent chain from ``head`` back to (not including) ``base``."""
        chain: list[str] = []
        sha: str | None = head
        while sha is not None and sha != base and sha not in chain:
            chain.append(sha)
            sha = next(iter(self.parents.get(sha) or []), None)
        return chain

    # ------------------------------------------------------------ writes (GitLab's)

    def retry(self, job_id: int) -> FakeJob:
        """A new pending run of a finished job, in its pipeline; the old one is retried.
        GitLab answers 403 for a job already retried or still running."""
        old = self.job(job_id)
        if old.retried or old.status not in RETRYABLE:
            raise ForgeForbidden("job.retry", "403 Forbidden - Job is not retryable", 403)
        old.retried = True
        new = FakeJob(
            self.next_id(), old.pipeline_id, old.name, old.stage, "pending", self.now(),
            old.allow_failure, old.when,
        )  # fmt: skip
        self.jobs[new.id] = new
        return new

    # ------------------------------------------------------------ GitLab's JSON

    def pipeline_json(self, pipeline: FakePipeline, *, full: bool = False) -> dict[str, Any]:
        """``PipelineBasic`` (lists), or with ``full`` the single pipeline's answer."""
        basic: dict[str, Any] = {
            "id": pipeline.id, "iid": pipeline.iid,
            "sha": pipeline.sha, "ref": pipeline.ref, "status": self.status_of(pipeline),
            "source": pipeline.source, "created_at": pipeline.created_at,
            "updated_at": pipeline.created_at, "name": None,
            "web_url": f"{URL}/{pipeline.project}/-/pipelines/{pipeline.id}",
        }  # fmt: skip
        if full:
            basic.update(yaml_errors=pipeline.yaml_errors, before_sha="0" * 40, tag=False)
        return basic

    def job_json(self, job: FakeJob) -> dict[str, Any]:
        pipeline = self.pipeline(job.pipeline_id)
        junit = [{"file_type": "junit", "filename": "junit.xml.gz", "file_format": "gzip"}]
        return {
            "id": job.id, "name": job.name, "stage": job.stage, "status": job.status,
            "ref": pipeline.ref, "allow_failure": job.allow_failure, "when": job.when,
            "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at, "duration": 0.0 if job.finished_at else None,
            "pipeline": self.pipeline_json(pipeline), "retried": job.retried,
            "web_url": f"{URL}/{pipeline.project}/-/jobs/{job.id}",
            "artifacts": junit if job.cases is not None else [],
        }  # fmt: skip

    def report_json(self, pipeline_id: int) -> dict[str, Any]:
        suites = [
            suite_json(job.name, list(job.cases), [job.id])
            for job in reversed(self.jobs_of(pipeline_id))
            if job.cases is not None
        ]
        return report_json(suites)
