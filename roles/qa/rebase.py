"""QA's rebase (roles/qa/role.py): before it waits for a pipeline, an MR that needs a rebase (or
has conflicts) is rebased onto the current target, never merged with it: the agent resolves
conflicts in the worktree, validation runs again, and the branch is pushed with
``--force-with-lease``."""

from __future__ import annotations

import logging
from typing import Any

from forge.guard import GuardBlocked
from forge.types import MergeRequest
from roles.agent_turn import run_agent
from roles.agents.base import TaskKind
from roles.context import RunContext
from roles.delivery import Delivery, guard_stop, issue_worktree, project_checks
from roles.engine.loop import RoleResult
from roles.pm.plan_notes import PlanNotApproved, load_approved_plan
from roles.ports import MergeRequests
from roles.prompts import Prompts
from workflow import Outcome

log = logging.getLogger(__name__)

# "broken_status" is how GitLab before 16.x reported what newer versions call conflict.
NEEDS_REBASE = frozenset({"need_rebase", "conflict", "broken_status"})


async def needs_rebase(merges: MergeRequests, mr: MergeRequest) -> bool:
    """GitLab reports a draft as ``draft_status`` ahead of ``conflict`` and ``need_rebase``,
    and crewline's MRs stay drafts until QA passes: a draft is rebased when its target moved
    on (the target's head is not its merge base), which covers both."""
    if mr.detailed_merge_status in NEEDS_REBASE:
        return True
    base = mr.diff_refs.base_sha if mr.diff_refs is not None else None
    if not mr.draft or not base:
        return False
    target = await merges.branch_sha(mr.project, mr.target_branch)
    return target is not None and target != base


class Rebase:
    """Rebase the MR's branch onto the current target; the agent resolves conflicts."""

    def __init__(self, prompts: Prompts, ctx: RunContext, mr: MergeRequest) -> None:
        self.prompts = prompts
        self.ctx = ctx
        self.mr = mr

    async def run(self) -> RoleResult | None:
        ctx = self.ctx
        try:
            _, plan = await load_approved_plan(ctx.gateway, ctx.issue.project, ctx.issue.iid)
        except PlanNotApproved as refused:
            return RoleResult(Outcome.BLOCKED, f"QA did not rebase: {refused}.")
        async with issue_worktree(ctx) as wt:
            delivery = Delivery(self.prompts, ctx, wt, project_checks(ctx, plan.acceptance))
            return await self._rebase_and_validate(delivery)

    async def _rebase_and_validate(self, delivery: Delivery) -> RoleResult | None:
        ctx = self.ctx
        step = f"rebase-{self.mr.sha[:12]}"
        try:
            done = await ctx.step(step, lambda: self._rebase(delivery))
            if not done["ok"]:
                return RoleResult(
                    Outcome.BLOCKED,
                    "The rebase left conflicts the agent could not resolve: "
                    + ", ".join(f"`{path}`" for path in done["conflicts"]),
                )
            delivery.remote = done["pushed"]
            # Validated once, never fixed here: a failure after the rebase (a semantic
            # conflict with the new target, or what only a clean checkout shows) is the
            # developer's to fix, with the output, as a red pipeline would be.
            report = await delivery.validate(f"{step}-validate-1")
            if not report.go:
                return RoleResult(
                    Outcome.FAILED,
                    f"After the rebase onto `{ctx.project.target_branch}` validation fails; "
                    f"back to the developer.\n\n{report.to_markdown()}",
                )
            return None
        except GuardBlocked as blocked:
            return guard_stop(blocked)

    async def _rebase(self, delivery: Delivery) -> dict[str, Any]:
        ctx, wt = self.ctx, delivery.wt
        workspaces = ctx.services.workspaces
        result = await workspaces.rebase(wt, ctx.project.target_branch)
        session = None
        if not result.ok:
            prompt = (
                f"A rebase of `{wt.branch}` onto `{ctx.project.target_branch}` stopped on "
                f"conflicts in: {', '.join(result.conflicts)}. Resolve them in the working "
                "tree (keep both sides' intent; remove every conflict marker). Do not commit."
            )
            turn = await run_agent(ctx, "resolve-conflicts", TaskKind.FIX, prompt, wt.path)
            session = turn.get("session_id")
            result = await workspaces.continue_rebase(wt)
            if not result.ok:
                await workspaces.abort_rebase(wt)
                return {"ok": False, "conflicts": list(result.conflicts)}
        pushed = await delivery.screened_push()
        log.info(
            "rebased: issue=%s onto=%s head=%s",
            ctx.issue.ref,
            ctx.project.target_branch,
            pushed[:10],
        )
        return {"ok": True, "pushed": pushed, "session_id": session}
