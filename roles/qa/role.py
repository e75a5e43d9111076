"""The QA role (qa-ready -> qa-running -> merge-ready): the MR's pipeline decides.

Only a pipeline that tests the MR's current head counts, found through the MR (its head
pipeline, or its merged-results or merge-train pipeline: roles/qa/pipeline.py). Before
waiting, an MR that needs a rebase (or has conflicts) is rebased onto the current target,
never merged with it: the agent resolves conflicts in the worktree, validation runs again,
and the branch is pushed with ``--force-with-lease`` (roles/qa/rebase.py).

A red pipeline is triaged deterministically before anyone is blamed: the failed jobs are
retried once; a failure that then passes, or that only involves tests already known as
flaky, is recorded as flaky (bounded retries); a failure also present on the target
branch's latest pipeline is a broken target (blocked, with the evidence); anything else goes
back to the developer with the failing jobs, the test names and a log excerpt, at most
``roles.qa.max_round_trips`` times (then blocked with every round's history:
roles/qa/rounds.py). A pipeline that waits on a blocking manual job, or that was canceled or
skipped, gives no verdict: blocked with the reason, never sent back to the developer.
While the pipeline runs, the run is parked without its slot and resumed where its watch
stood (roles/qa/parking.py).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from forge.ci_types import Job
from forge.sink import seal
from forge.types import Issue, MergeRequest, Pipeline
from roles.context import RunContext, Services
from roles.engine.loop import GO, Admission, RoleResult
from roles.flaky import flaky_key, record_flakes
from roles.gates.decide import issue_filer
from roles.mr_link import named_mr, qa_passed_marker
from roles.notify import GateRequest
from roles.prompts import Prompts
from roles.qa.parking import WATCH, RunParked, resume_point, watching
from roles.qa.pipeline import SETTLED, HeadPipelines, needs_a_human, not_run, what_runs
from roles.qa.rebase import Rebase, needs_rebase
from roles.qa.rounds import earlier_rounds, history, round_of, sent_back_marker
from roles.triage import Fingerprint, excerpt, fingerprint, known_flaky
from workflow import Outcome

log = logging.getLogger(__name__)

FINISHED = frozenset({"success", "failed", "canceled", "skipped"})  # a job's end
_DRAFT = re.compile(r"^\s*(draft:|\[draft\]|\(draft\))\s*", re.IGNORECASE)


class QaRole:
    name = "qa"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return GO  # QA runs no paid agent turn of its own: a budget never holds it

    async def run(self, ctx: RunContext) -> RoleResult:
        watched = ctx.done.get(f"{WATCH}0")
        if isinstance(watched, dict) and watched.get("mr"):  # resumed: the MR is known
            mr: MergeRequest | None = await ctx.gateway.merges.get_mr(
                ctx.issue.project, int(watched["mr"])
            )
        else:
            notes = await ctx.notes_at_start()
            mr = await named_mr(ctx.gateway, ctx.issue.project, notes)
        if mr is None:
            return RoleResult(Outcome.BLOCKED, "No merge request found for this issue.")
        if mr.state == "merged":
            return RoleResult(Outcome.MERGED, f"!{mr.iid} was merged by hand.")
        # A run resumed from parking watches on: a rebase now would change the head it waits for.
        if not watching(ctx) and await needs_rebase(ctx.gateway.merges, mr):
            rebased = await Rebase(self.prompts, ctx, mr).run()
            if isinstance(rebased, RoleResult):
                return rebased
            mr = await ctx.gateway.merges.get_mr(mr.project, mr.iid)
        return await _Watch(ctx, mr).run()


class _Watch:
    """Wait for the head's pipeline, triage a failure, pass or send back."""

    def __init__(self, ctx: RunContext, mr: MergeRequest) -> None:
        self.ctx = ctx
        self.mr = mr
        self.settings = ctx.services.roles
        self.heads = HeadPipelines(ctx.gateway.merges, mr)

    async def run(self) -> RoleResult:
        retry, first, retried = resume_point(self.ctx)
        while True:
            await self._mark(retry, first, retried)
            pipeline = await self._finished_pipeline(retry, retried)
            if pipeline is None:
                return RoleResult(
                    Outcome.BLOCKED,
                    f"No finished pipeline for {self.mr.sha[:10]} (through !{self.mr.iid}) "
                    f"after {self.settings.pipeline_timeout_seconds:.0f} s; check the "
                    "project's CI.",
                )
            if pipeline.status == "manual":
                if first is not None:  # the retried jobs passed: only the manual one waits
                    await self._record_flaky(first, pipeline)
                jobs = await self.ctx.gateway.merges.jobs(self.mr.project, pipeline.id)
                return RoleResult(Outcome.BLOCKED, needs_a_human(pipeline, self.mr.sha, jobs))
            if pipeline.status in ("canceled", "skipped"):
                return RoleResult(Outcome.BLOCKED, not_run(pipeline, self.mr.sha))
            if pipeline.status == "success":
                if first is not None:
                    await self._record_flaky(first, pipeline)
                return await self._passed(pipeline)
            current = await self._fingerprint(pipeline)
            if current.empty:
                return await self._no_failed_job(pipeline)
            first = first or current
            flaky = await self.ctx.services.storage.settings.get_json(
                flaky_key(self.mr.project), []
            )
            first_try = retry == 0
            if (first_try or known_flaky(current, flaky)) and retry < self.settings.flaky_retries:
                retried = await self._retry_step(pipeline, retry)
                retry += 1
                continue
            broken = await self._broken_target(current)
            if broken is not None:
                return broken
            return await self._send_back(pipeline, current)

    async def _mark(self, retry: int, first: Fingerprint | None, retried: list[int]) -> None:
        """Where the watch is, recorded once per round of waiting: a run resumed from
        parking (or after a restart) starts again here, not from the first pipeline."""

        async def where() -> dict[str, Any]:
            known = None if first is None else [list(first.jobs), list(first.tests),
                                                list(first.errors)]  # fmt: skip
            return {"retried": retried, "first": known, "mr": self.mr.iid}

        await self.ctx.step(f"{WATCH}{retry}", where)

    async def _finished_pipeline(self, retry: int, retried: list[int]) -> Pipeline | None:
        """The head's newest pipeline once it has settled, and with it every job in
        ``retried``: GitLab answers a retry at once and moves the pipeline on later, so right
        after a retry the pipeline may still say failed while the retried job waits.

        Not settled yet: the run is parked (RunParked), giving its slot back, and looks again
        ``pipeline_poll_seconds`` later or when a pipeline event names its MR; None once
        ``pipeline_timeout_seconds`` passed since this round of waiting began (wall clock,
        recorded, so neither parking nor a restart resets it)."""

        async def now() -> float:
            return time.time()

        since = await self.ctx.step(f"waiting-{retry}", now)
        pipeline = await self.heads.newest()
        if (
            pipeline is not None
            and pipeline.status in SETTLED
            and await self._jobs_finished(pipeline, retried)
        ):
            return pipeline
        left = since + self.settings.pipeline_timeout_seconds - time.time()
        if left <= 0:
            return None
        shown = pipeline.status if pipeline is not None else "not created yet"
        raise RunParked(
            min(self.settings.pipeline_poll_seconds, left),
            f"waiting for the pipeline of {self.mr.sha[:10]} (!{self.mr.iid}): {shown}",
            mr_iid=self.mr.iid,
            branch=self.mr.source_branch,
        )

    async def _jobs_finished(self, pipeline: Pipeline, ids: list[int]) -> bool:
        if not ids:
            return True
        jobs = await self.ctx.gateway.merges.jobs(self.mr.project, pipeline.id)
        status = {job.id: job.status for job in jobs}
        return all(status.get(job_id) in FINISHED for job_id in ids)

    async def _failed_jobs(self, pipeline: Pipeline) -> list[Job]:
        jobs = await self.ctx.gateway.merges.jobs(self.mr.project, pipeline.id)
        # A retried job leaves its old run behind: the newest run of each name counts.
        newest: dict[str, Job] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            newest[job.name] = job
        return [job for job in newest.values() if job.status == "failed"]

    async def _fingerprint(self, pipeline: Pipeline) -> Fingerprint:
        merges = self.ctx.gateway.merges
        failed = await self._failed_jobs(pipeline)
        report = await merges.test_report(self.mr.project, pipeline.id)
        traces = [await merges.job_trace(self.mr.project, job.id) for job in failed]
        return fingerprint([job.name for job in failed], report, traces)

    async def _retry_step(self, pipeline: Pipeline, retry: int) -> list[int]:
        async def retry_failed() -> list[int]:
            return await self._retry(pipeline)

        return await self.ctx.step(f"retry-{pipeline.id}-{retry}", retry_failed)

    async def _retry(self, pipeline: Pipeline) -> list[int]:
        retried = []
        for job in await self._failed_jobs(pipeline):
            retried.append((await self.ctx.gateway.merges.retry_job(self.mr.project, job.id)).id)
        log.info(
            "qa retried jobs: issue=%s pipeline=%s jobs=%s",
            self.ctx.issue.ref,
            pipeline.id,
            retried,
        )
        return retried

    async def _record_flaky(self, failure: Fingerprint, pipeline: Pipeline) -> None:
        ctx = self.ctx
        names = list(failure.tests) or [f"job:{job}" for job in failure.jobs]
        await record_flakes(ctx.services.storage.settings, self.mr.project, names)

        async def learn() -> int:
            return await ctx.services.storage.learnings.add(
                ctx.issue.project, ctx.issue.iid, "flaky",
                f"Flaky in CI (failed, then passed on retry): {', '.join(names)}", ctx.run.id,
            )  # fmt: skip

        await ctx.step(f"flaky-{pipeline.id}", learn)
        await ctx.note(
            f"flaky-{pipeline.id}",
            f"Pipeline #{pipeline.id} failed, then passed when the failed jobs were retried: "
            f"recorded as flaky ({', '.join(names)}), not sent back to the developer.",
            quoted=True,  # test names come from the CI report
        )

    async def _broken_target(self, current: Fingerprint) -> RoleResult | None:
        merges, project = self.ctx.gateway.merges, self.mr.project
        for pipeline in await merges.pipelines(project, ref=self.mr.target_branch):
            if pipeline.status not in FINISHED:
                continue
            if pipeline.status != "failed":
                return None  # the target's latest finished pipeline is green
            target = await self._fingerprint(pipeline)
            if not current.shares_with(target):
                return None
            shared = sorted(set(current.tests) & set(target.tests)) or list(current.jobs)
            return RoleResult(
                Outcome.BLOCKED,
                f"Broken target: `{self.mr.target_branch}` fails the same way in pipeline "
                f"#{pipeline.id} ({pipeline.web_url}): {', '.join(shared)}. This is not the "
                "MR's fault; fix the target branch, then retry this issue.",
            )
        return None

    async def _no_failed_job(self, pipeline: Pipeline) -> RoleResult:
        """A red pipeline without a failed job: GitLab could not run it (``yaml_errors``).
        Nothing to retry and nothing to show a developer: a human looks at the CI."""
        full = await self.ctx.gateway.merges.pipeline(self.mr.project, pipeline.id)
        errors = full.yaml_errors.strip()
        named = what_runs(pipeline, self.mr.sha)
        reason = f": `{errors[:500]}`" if errors else " (no job failed and no error was given)"
        return RoleResult(
            Outcome.BLOCKED,
            f"QA cannot judge: {named} failed before any job ran{reason}. Fix the project's "
            "CI configuration (or this MR's change to it), then retry this issue.",
        )

    async def _send_back(self, pipeline: Pipeline, failure: Fingerprint) -> RoleResult:
        """Back to the developer with the evidence, unless the work has already made
        ``max_round_trips`` round trips: then blocked, with every round's history."""
        ctx, merges = self.ctx, self.ctx.gateway.merges
        excerpts = []
        for job in (await self._failed_jobs(pipeline))[:3]:
            trace = await merges.job_trace(self.mr.project, job.id)
            excerpts.append(f"Job `{job.name}`:\n\n```text\n{excerpt(trace)}\n```")
        named = what_runs(pipeline, self.mr.sha)
        summary = f"{named[0].upper()}{named[1:]} failed: {failure.describe()}."
        evidence = "\n\n".join([summary, *excerpts])
        notes = await ctx.gateway.notes(ctx.issue.project, ctx.issue.iid)
        rounds = earlier_rounds(notes, current_pipeline=pipeline.id)
        limit = self.settings.qa.max_round_trips
        if len(rounds) >= limit:
            last = round_of(evidence, pipeline.id, self.mr.sha)
            return RoleResult(Outcome.BLOCKED, history(rounds, last, limit))
        trip = f"Back to the developer (round trip {len(rounds) + 1} of at most {limit})."
        marker = seal(sent_back_marker(pipeline.id, self.mr.sha))
        return RoleResult(
            Outcome.FAILED, f"{summary} {trip}\n\n" + "\n\n".join([*excerpts, marker])
        )

    async def _passed(self, pipeline: Pipeline) -> RoleResult:
        ctx, mr = self.ctx, self.mr
        if mr.draft:
            await ctx.gateway.merges.update_mr(mr.project, mr.iid, title=_DRAFT.sub("", mr.title))
        run = await ctx.services.storage.runs.spend(project=mr.project, iid=ctx.issue.iid)
        summary = "\n".join(
            [
                f"Merge request !{mr.iid}: {mr.web_url}",
                f"Head `{mr.sha[:10]}`, pipeline #{pipeline.id}: **{pipeline.status}**",
                f"Cost so far: {run.tokens:,} tokens, ${run.cost_usd:.2f}",
            ]
        )
        passed = (
            f"QA passed: head `{mr.sha[:10]}`, pipeline #{pipeline.id} {pipeline.status}. "
            f"Waiting for a merge approval.\n\n{seal(qa_passed_marker(mr.sha))}"
        )
        return RoleResult(
            Outcome.SUCCEEDED,
            passed,
            gate=GateRequest(
                project=mr.project,
                iid=ctx.issue.iid,
                title=ctx.issue.title,
                gate=ctx.services.workflow.gate_state("merge").name,
                revision=mr.sha,
                summary=summary,
                url=mr.web_url,
                filer=issue_filer(ctx.issue),
            ),
        )
