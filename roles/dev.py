"""The developer role (dev-ready -> dev-running -> review-ready): from plan to merge request.

Gates before the run: the budget, every dependency done, no running issue changing the
same files. In the run, each step is checkpointed and every side effect is find-or-create:

1. open the issue's worktree (from the pushed work in progress when there is some);
2. implement: the agent works with the plan, the issue and relevant learnings; the work is
   committed and pushed (``--force-with-lease``) in the same step, so a crash loses nothing;
3. validate: the project's commands plus the plan's acceptance checks; NO-GO sends the
   failing output back to the same agent session, pushes the fix, validates again, up to
   ``max_attempts``; still NO-GO -> failed with the last report;
4. ownership: files changed outside the plan's owned paths -> blocked, naming them;
5. compaction: the agent's learnings are stored and posted; no learnings, no MR;
6. the MR (found by source branch before one is created, draft until QA passes) and a
   handoff note on the MR and the issue.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

from forge.guard import GuardBlocked
from forge.sink import seal
from forge.types import Issue
from roles.agents.base import TaskKind
from roles.compaction import LEARNINGS_FORMAT
from roles.context import RunContext, Services
from roles.delivery import Delivery, guard_stop, issue_worktree, project_checks
from roles.dependencies import dependency_admission, overlap_admission
from roles.engine.loop import Admission, RoleResult, Verdict
from roles.flaky.fix_gate import refuse_symptom_fix
from roles.mr_link import mr_marker, work_feedback
from roles.pm.plan import Plan
from roles.pm.plan_notes import PlanNotApproved, approved_plan
from roles.pm.role import budget_admission, relevant_learnings
from roles.prompts import FIRST_ATTEMPT, Prompts
from roles.untrusted import Fence
from roles.validate import ValidationReport
from roles.workspace.worktree import Worktree
from workflow import Outcome

log = logging.getLogger(__name__)


def outside_owned(changed: list[str], owned: list[str]) -> list[str]:
    return sorted(path for path in changed if not any(fnmatch.fnmatch(path, g) for g in owned))


class DevRole:
    name = "dev"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts

    async def admit(self, services: Services, issue: Issue) -> Admission:
        # Dependencies first: answered from the pass's listing with no call and no database
        # read, they keep a thousand waiting issues cheap (the budget is a query per issue).
        for gate in (dependency_admission, budget_admission):
            admission = await gate(services, issue)
            if admission.verdict is not Verdict.GO:
                return admission
        try:
            # The notes the dependency check just read for this copy of the issue (0041).
            _, plan = approved_plan(list(await services.notes_of(issue)))
        except PlanNotApproved as refused:
            return Admission(Verdict.BLOCK, str(refused))
        return await overlap_admission(services, issue, plan.owned_paths)

    async def run(self, ctx: RunContext) -> RoleResult:
        # Exactly the plan a human approved: its checks run, its owned paths bound the diff.
        try:
            _, plan = approved_plan(await ctx.notes_at_start())
        except PlanNotApproved as refused:
            return RoleResult(Outcome.BLOCKED, f"The developer did not start: {refused}.")
        async with issue_worktree(ctx) as wt:
            return await _Developer(self.prompts, ctx, plan, wt).work()


class _Developer:
    """One run: deliver the plan on the issue's branch, then open the MR and hand off."""

    def __init__(self, prompts: Prompts, ctx: RunContext, plan: Plan, wt: Worktree) -> None:
        self.prompts = prompts
        self.ctx = ctx
        self.plan = plan
        self.wt = wt
        self.delivery = Delivery(prompts, ctx, wt, project_checks(ctx, plan.acceptance))

    async def work(self) -> RoleResult:
        try:
            return await self._work()
        except GuardBlocked as blocked:
            return guard_stop(blocked)

    async def _work(self) -> RoleResult:
        ctx, issue = self.ctx, self.ctx.issue
        turn = await self.delivery.agent_and_push(
            "implement", TaskKind.IMPLEMENT, await self._implement_prompt(), None
        )
        converged = await self.delivery.converge(turn, ctx.services.roles.dev.max_attempts)
        if isinstance(converged, RoleResult):
            return converged
        changed = await ctx.services.workspaces.changed_files(self.wt)
        outside = outside_owned(changed, self.plan.owned_paths)
        if outside:
            return RoleResult(
                Outcome.BLOCKED,
                "Changed files outside the plan's owned paths: "
                + ", ".join(f"`{path}`" for path in outside)
                + ". A human must allow them (extend the plan) or reject the change.",
            )
        refused = await refuse_symptom_fix(ctx, self.wt)
        if refused is not None:
            return refused
        if not await self.delivery.learnings(converged.turn):
            return RoleResult(
                Outcome.BLOCKED, "The agent reported no learnings: no learnings, no merge request."
            )
        mr = await ctx.step("mr", self._merge_request)
        await self._handoff(mr, changed, converged.report)
        log.info("dev run done: issue=%s mr=!%s", issue.ref, mr["iid"])
        return RoleResult(Outcome.SUCCEEDED)

    async def _implement_prompt(self) -> str:
        ctx, issue = self.ctx, self.ctx.issue
        checks = "\n".join(f"- `{check.command}`" for check in self.delivery.checks)
        feedback = work_feedback(await ctx.notes_at_start())
        fence = Fence([issue.title, issue.description, feedback])
        return self.prompts.render(
            "implement",
            untrusted_notice=fence.notice(),
            project=issue.project,
            branch=self.wt.branch,
            iid=issue.iid,
            title=fence.inline(issue.title),
            description=fence.wrap(
                issue.description or "(no description)", f"issue description by @{issue.author}"
            ),
            plan=self.plan.to_markdown(),
            learnings=await relevant_learnings(ctx.services, issue),
            # What sent the work back quotes CI logs and reviewers: data as well.
            feedback=fence.wrap(feedback, "what sent the work back") if feedback else FIRST_ATTEMPT,
            checks=checks,
            learnings_format=LEARNINGS_FORMAT,
        )

    async def _merge_request(self) -> dict[str, Any]:
        ctx = self.ctx
        mr = await ctx.gateway.merges.ensure_mr(
            ctx.issue.project,
            source_branch=self.wt.branch,
            target_branch=ctx.project.target_branch,
            title=ctx.issue.title,
            description=f"Closes #{ctx.issue.iid}\n\n{self.plan.summary}",
            draft=True,
        )
        return {"iid": mr.iid, "web_url": mr.web_url, "sha": mr.sha, "branch": mr.source_branch}

    async def _handoff(
        self, mr: dict[str, Any], changed: list[str], report: ValidationReport
    ) -> None:
        ctx = self.ctx
        run = await ctx.services.storage.runs.get(ctx.run.id)
        commits = await ctx.services.workspaces.commits(self.wt)
        body = "\n\n".join(
            [
                f"### Handoff: {ctx.issue.title}",
                f"Merge request: !{mr['iid']} ({mr['web_url']}), branch `{self.wt.branch}`.",
                "**Commits**\n\n"
                + "\n".join(f"- `{sha[:10]}` {subject}" for sha, subject in commits),
                "**Files changed**\n\n" + "\n".join(f"- `{path}`" for path in changed),
                "**Validation**\n\n" + report.to_markdown(),
                f"**Cost**: {run.tokens_in + run.tokens_out:,} tokens, ${run.cost_usd:.2f} "
                "(as reported by the agent).",
                "**Remaining risks**\n\n"
                + ("\n".join(f"- {r}" for r in self.plan.risks) or "- none named"),
                "**Next recommended slice**: review the MR; QA runs its pipeline next.",
                seal(mr_marker(int(mr["iid"]), self.wt.branch)),
            ]
        )
        await ctx.note("handoff", body, quoted=True)
        await ctx.note("handoff", body, on="mr", iid=int(mr["iid"]), quoted=True)


__all__ = ["DevRole", "outside_owned"]
