"""A reproduction or validation resumed after a crash counts the CI runs it already started.

Before its first retry a step writes, into its note, the newest job of the test's name in
the pipeline it re-runs: ``<!-- crewline:flaky-runs pipeline=<id> after=<job id> -->``.
Every job of that name started after it is one of the step's runs. A step resumed on any host
(the janitor re-queued it, or it raised and was re-queued) reads the marker back, waits for
the jobs it started and takes their verdicts, and retries only for the runs still missing:
a crash between "retry the job" and "write the note" costs no second CI run. The step's
final note leaves the marker out, so the next step on the same pipeline (a new validation
round) starts afresh.
"""

from __future__ import annotations

import re

from forge.sink import seal
from forge.types import Issue
from roles.flaky.filing import Rerun
from roles.flaky.proof import RunOnce
from roles.flaky.runs import JobRunner, Run, live_note
from roles.ports import IssueTracker

_SINCE = re.compile(r"<!-- crewline:flaky-runs pipeline=(\d+) after=(\d+) -->")


def since_marker(pipeline: int, after: int) -> str:
    return f"<!-- crewline:flaky-runs pipeline={pipeline} after={after} -->"


def started_after(note_body: str, pipeline: int) -> int | None:
    """The job id a step in progress on ``pipeline`` counts its runs after, if any."""
    match = _SINCE.search(note_body)
    if match is None or int(match.group(1)) != pipeline:
        return None
    return int(match.group(2))


async def resumable_runs(
    gateway: IssueTracker, runner: JobRunner, issue: Issue, key: str, rerun: Rerun
) -> tuple[RunOnce, str]:
    """The runs of ``rerun`` for the step whose note is keyed ``key`` (the ones it started
    before a crash first), and the marker its progress notes must keep."""
    project = issue.project
    note = await gateway.find_note(project, issue.iid, key)
    after = started_after(note.body, rerun.pipeline) if note is not None else None
    if after is None:
        after = max(await runner.job_ids(project, rerun.pipeline, rerun.job))
        marker = since_marker(rerun.pipeline, after)
        await live_note(
            gateway, project, issue.iid, key, f"**Starting the runs**\n\n{seal(marker)}"
        )
    marker = since_marker(rerun.pipeline, after)
    started = [j for j in await runner.job_ids(project, rerun.pipeline, rerun.job) if j > after]

    async def once() -> Run:
        if started:  # a run a crashed attempt started: its verdict, not a new run
            return await runner.verdict(project, started.pop(0), rerun.test)
        return await runner.run_once(project, rerun.pipeline, rerun.job, rerun.test)

    return once, marker
