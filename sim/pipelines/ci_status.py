"""Pure CI status rules: a pipeline's status from its jobs' (GitLab's composite status), and
which waiting jobs may start once the stages before them are done.

A failed or canceled job that allows failure is *ignored*: it neither fails its pipeline nor
stops later stages; so is a manual job that allows failure (an optional action). A manual
job that does not allow failure blocks: the stages after it wait, and the pipeline is
``manual`` until someone plays it. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ACTIVE = frozenset({"created", "pending", "running"})  # a job or pipeline still in progress
FINISHED = frozenset({"success", "failed", "canceled", "skipped"})
RETRYABLE = frozenset({"success", "failed", "canceled"})
ALL_STATUSES = (
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
)


@dataclass(frozen=True)
class JobState:
    id: int
    stage_idx: int
    status: str
    when: str = "on_success"
    allow_failure: bool = False

    @property
    def effective(self) -> str:
        """The status composition sees: ``ignored`` for an allowed failure."""
        if self.allow_failure and self.status in ("failed", "canceled", "manual"):
            return "ignored"
        return self.status


def composite_status(jobs: Iterable[JobState]) -> str | None:
    """GitLab's status of a group of jobs (a stage or a pipeline); None for no jobs."""
    seen = {job.effective for job in jobs}
    if not seen:
        return None

    def only(*allowed: str) -> bool:
        return seen <= {*allowed, "ignored"}

    if only("skipped"):
        return "skipped"
    if only("success", "skipped"):
        return "success"
    if only("created"):
        return "created"
    if only("canceled", "success", "skipped"):
        return "canceled"
    if only("pending", "created", "skipped"):
        return "pending"
    if seen & {"running", "pending"}:
        return "running"
    if "manual" in seen:
        return "manual"  # a blocking manual job waits to be played
    if "created" in seen:
        return "running"  # an earlier stage finished, a later one has not started yet
    return "failed"


def advance(jobs: Sequence[JobState]) -> dict[int, str]:
    """New statuses for ``created`` jobs whose earlier stages are done: ``pending`` to run
    them, ``skipped`` when their ``when`` rules them out. Stages are walked in order with
    the new statuses applied, so a job just made pending holds back the stages after it."""
    changes: dict[int, str] = {}
    current = {job.id: job for job in jobs}
    for stage in sorted({job.stage_idx for job in jobs}):
        earlier = [job for job in current.values() if job.stage_idx < stage]
        before = composite_status(earlier) or "success"
        if before in ACTIVE or before == "manual":
            break  # a blocking manual job holds the later stages until it is played
        for job in [j for j in jobs if j.stage_idx == stage and current[j.id].status == "created"]:
            decided = _decide(job.when, before)
            changes[job.id] = decided
            current[job.id] = JobState(job.id, stage, decided, job.when, job.allow_failure)
    return changes


def _decide(when: str, before: str) -> str:
    if when == "manual":
        return "manual" if before in ("success", "skipped") else "skipped"
    if when == "always":
        return "pending"
    if when == "on_failure":
        return "pending" if before == "failed" else "skipped"
    return "pending" if before in ("success", "skipped") else "skipped"
