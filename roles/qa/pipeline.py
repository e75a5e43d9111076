"""Which pipeline speaks for a merge request's head, and what a settled one that is neither
green nor red means.

The pipeline is found through the MR, as GitLab shows it: its ``head_pipeline`` first, else
the newest of the MR's pipelines (``GET /merge_requests/:iid/pipelines``) that tests the head.
A pipeline tests the head when it ran on the head's sha (a branch or detached MR pipeline)
or when it is the MR's merged-results or merge-train pipeline (ref
``refs/merge-requests/<iid>/merge`` or ``.../train``, ``source: merge_request_event``), which
runs on a merge commit whose parents include the head. Listing ``pipelines?sha=<head>`` finds
neither of those, and a project that runs them usually has no branch pipeline at all.

Settled: ``success``, ``failed``, ``canceled``, ``skipped`` and ``manual`` (a job with
``when: manual`` and ``allow_failure: false`` waits for a human to play it; nothing more
happens until someone does, so waiting longer would only end in a timeout).
"""

from __future__ import annotations

from forge.ci_types import Job
from forge.types import MergeRequest, Pipeline
from roles.ports import MergeRequests

SETTLED = frozenset({"success", "failed", "canceled", "skipped", "manual"})


def mr_pipeline_refs(iid: int) -> tuple[str, str]:
    """The refs of an MR's merged-results and merge-train pipelines."""
    return f"refs/merge-requests/{iid}/merge", f"refs/merge-requests/{iid}/train"


class HeadPipelines:
    """Finds the newest pipeline that tests ``mr``'s head sha, through the MR (``mr`` as the
    caller has just read it)."""

    def __init__(self, merges: MergeRequests, mr: MergeRequest) -> None:
        self.merges = merges
        self.mr = mr
        self._parents: dict[str, list[str]] = {}  # merge commit -> its parents (never change)
        # The caller read ``mr`` a moment ago: the first look starts from it, later ones read.
        self._just_read: MergeRequest | None = mr

    async def newest(self) -> Pipeline | None:
        mr = self.mr
        fresh = self._just_read or await self.merges.get_mr(mr.project, mr.iid)
        self._just_read = None
        head = fresh.head_pipeline
        if head is not None and await self.tests_head(head):
            return head
        for pipeline in await self.merges.mr_pipelines(mr.project, mr.iid):
            if await self.tests_head(pipeline):
                return pipeline
        return None

    async def tests_head(self, pipeline: Pipeline) -> bool:
        if pipeline.sha == self.mr.sha:
            return True
        if pipeline.ref not in mr_pipeline_refs(self.mr.iid):
            return False
        if pipeline.sha not in self._parents:
            self._parents[pipeline.sha] = await self.merges.commit_parents(
                self.mr.project, pipeline.sha
            )
        return self.mr.sha in self._parents[pipeline.sha]


def what_runs(pipeline: Pipeline, head: str) -> str:
    """How a note names the pipeline: whose head it tests, and on what commit."""
    if pipeline.sha == head:
        return f"pipeline #{pipeline.id} ({pipeline.web_url}) for {head[:10]}"
    return (
        f"merged-results pipeline #{pipeline.id} ({pipeline.web_url}) for {head[:10]} "
        f"(merge commit {pipeline.sha[:10]} on `{pipeline.ref}`)"
    )


def blocking_manual_jobs(jobs: list[Job]) -> list[Job]:
    """The manual jobs the pipeline waits for: ``allow_failure: false`` (or, when none says
    so, every manual job: a DAG ``needs`` can make an optional one block too)."""
    manual = [job for job in jobs if job.status == "manual"]
    blocking = [job for job in manual if not job.allow_failure]
    return blocking or manual


def needs_a_human(pipeline: Pipeline, head: str, jobs: list[Job]) -> str:
    waiting = blocking_manual_jobs(jobs)
    named = ", ".join(f"`{job.name}` ({job.web_url})" for job in waiting)
    return (
        f"QA needs a human: {what_runs(pipeline, head)} waits for the manual job(s) "
        f"{named or '(none listed)'}, which block it (`allow_failure: false`). Play them in "
        "GitLab if they should run, then retry this issue; nothing was sent back to the "
        "developer."
    )


def not_run(pipeline: Pipeline, head: str) -> str:
    """A canceled or skipped pipeline gave no verdict on the head: not the developer's fault."""
    why = {
        "canceled": "was canceled (by a person, or by GitLab for a newer pipeline)",
        "skipped": "was skipped (a `[skip ci]` commit, or rules that matched no job)",
    }[pipeline.status]
    return (
        f"QA has no CI verdict: {what_runs(pipeline, head)} {why}. Nothing was sent back to "
        "the developer; run a pipeline for this head (Run pipeline, or retry this one) and "
        "then retry this issue."
    )
