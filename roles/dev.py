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

import asyncio
import fnmatch
import logging
from typing import Any

from forge.guard import GuardBlocked
from forge.types import Issue
from roles.agent_turn import Turn, ask_agent, run_agent
from roles.agents.base import TaskKind
from roles.budget import over_budget
from roles.compaction import LEARNINGS_FORMAT, LearningItem, learnings_markdown, parse_learnings
from roles.context import RunContext, Services
from roles.dependencies import dependency_admission, overlap_admission
from roles.engine import GO, Admission, RoleResult, Verdict
from roles.notify import Event, EventKind
from roles.plan import Plan
from roles.plan_notes import load_plan
from roles.pm import budget_admission, relevant_learnings
from roles.prompts import Prompts
from roles.validate import Check, ValidationReport, run_validation
from roles.workspace import Worktree
from workflow import Outcome

log = logging.getLogger(__name__)

AUTHOR = ("crewline", "crewline@localhost")


def outside_owned(changed: list[str], owned: list[str]) -> list[str]:
    return sorted(path for path in changed if not any(fnmatch.fnmatch(path, g) for g in owned))


class DevRole:
    name = "dev"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts

    async def admit(self, services: Services, issue: Issue) -> Admission:
        for gate in (budget_admission, dependency_admission):
            admission = await gate(services, issue)
            if admission.verdict is not Verdict.GO:
                return admission
        plan = await load_plan(services.gateway, issue.project, issue.iid)
        if plan is None:
            return Admission(Verdict.BLOCK, "no plan found on the issue; send it back to the PM")
        return await overlap_admission(services, issue, plan[1].owned_paths)

    async def run(self, ctx: RunContext) -> RoleResult:
        loaded = await load_plan(ctx.gateway, ctx.issue.project, ctx.issue.iid)
        if loaded is None:
            return RoleResult(Outcome.BLOCKED, "No plan found on the issue.")
        plan = loaded[1]
        workspaces = ctx.services.workspaces
        wt = await workspaces.open(
            ctx.issue.project,
            f"{ctx.gateway.url}/{ctx.issue.project}.git",
            ctx.issue.iid,
            ctx.issue.title,
            ctx.project.target_branch,
            ctx.key,
        )
        try:
            return await _Developer(self.prompts, ctx, plan, wt).work()
        finally:
            await workspaces.close(wt)


class _Developer:
    """One run's state: the worktree, the remote sha the next push expects, the session."""

    def __init__(self, prompts: Prompts, ctx: RunContext, plan: Plan, wt: Worktree) -> None:
        self.prompts = prompts
        self.ctx = ctx
        self.plan = plan
        self.wt = wt
        self.remote = wt.remote_sha
        self.limit = ctx.services.roles.dev.max_attempts
        self.checks = [Check(cmd, cmd, "project") for cmd in ctx.project.validation] + [
            Check(cmd, cmd, "acceptance") for cmd in plan.acceptance
        ]

    async def work(self) -> RoleResult:
        try:
            return await self._work()
        except GuardBlocked as blocked:
            return RoleResult(
                Outcome.BLOCKED,
                f"The change was not pushed: {blocked.reason} in `{blocked.where}` "
                f"(rule {blocked.rule}). A human must remove it from the branch's work.",
            )

    async def _work(self) -> RoleResult:
        ctx, issue = self.ctx, self.ctx.issue
        turn = await self._agent_and_push(
            "implement", TaskKind.IMPLEMENT, await self._implement_prompt(), None
        )
        report: ValidationReport | None = None
        for attempt in range(1, self.limit + 1):
            stop = await self._budget_stop()
            if stop is not None:
                return stop
            report = ValidationReport.from_json(
                await ctx.step(f"validate-{attempt}", self._validate)
            )
            if report.go:
                break
            if attempt == self.limit:
                return RoleResult(
                    Outcome.FAILED,
                    f"Validation still fails after {self.limit} attempts.\n\n{report.to_markdown()}",
                )
            prompt = self.prompts.render(
                "fix",
                attempt=attempt + 1,
                max_attempts=self.limit,
                feedback=report.feedback_for_agent(),
                learnings_format=LEARNINGS_FORMAT,
            )
            turn = await self._agent_and_push(
                f"fix-{attempt}", TaskKind.FIX, prompt, turn.session_id
            )
        assert report is not None
        changed = await ctx.services.workspaces.changed_files(self.wt)
        outside = outside_owned(changed, self.plan.owned_paths)
        if outside:
            return RoleResult(
                Outcome.BLOCKED,
                "Changed files outside the plan's owned paths: "
                + ", ".join(f"`{path}`" for path in outside)
                + ". A human must allow them (extend the plan) or reject the change.",
            )
        learnings = await self._learnings(turn)
        if not learnings:
            return RoleResult(
                Outcome.BLOCKED, "The agent reported no learnings: no learnings, no merge request."
            )
        mr = await ctx.step("mr", self._merge_request)
        await self._handoff(mr, changed, report)
        log.info("dev run done: issue=%s mr=!%s", issue.ref, mr["iid"])
        return RoleResult(Outcome.SUCCEEDED)

    # ------------------------------------------------------------ steps

    async def _implement_prompt(self) -> str:
        ctx, issue = self.ctx, self.ctx.issue
        checks = "\n".join(f"- `{check.command}`" for check in self.checks)
        return self.prompts.render(
            "implement",
            project=issue.project,
            branch=self.wt.branch,
            iid=issue.iid,
            title=issue.title,
            description=issue.description or "(no description)",
            plan=self.plan.to_markdown(),
            learnings=await relevant_learnings(ctx.services, issue),
            checks=checks,
            learnings_format=LEARNINGS_FORMAT,
        )

    async def _agent_and_push(
        self, step: str, kind: TaskKind, prompt: str, session_id: str | None
    ) -> Turn:
        """The agent's turn and the push of its work, recorded together."""
        ctx = self.ctx

        async def turn_and_push() -> dict[str, Any]:
            result = await run_agent(ctx, step, kind, prompt, self.wt.path, session_id=session_id)
            message = f"{ctx.issue.title} (#{ctx.issue.iid}, {ctx.key} {step})"
            workspaces = ctx.services.workspaces
            if await workspaces.commit_all(self.wt, message, *AUTHOR) is not None:
                self.remote = await self._screened_push()
            result["pushed"] = self.remote
            return result

        data = await ctx.step(step, turn_and_push)
        self.remote = data.get("pushed") or self.remote
        return Turn.of(data)

    async def _screened_push(self) -> str:
        """Push only what the guard passes: the branch's changed files are screened like
        any other write to GitLab, and the push is audited either way."""
        ctx, wt = self.ctx, self.wt
        calls = ctx.gateway.calls
        audit = ctx.services.storage.audit
        target = f"{ctx.issue.project}@{wt.branch}"
        for path in await ctx.services.workspaces.changed_files(wt):
            file = wt.path / path
            if not await asyncio.to_thread(file.is_file):
                continue
            try:
                calls.guard.screen_content(await asyncio.to_thread(file.read_bytes), where=path)
            except GuardBlocked as blocked:
                await audit.append(
                    calls.who, "git.push", target, {"path": path}, f"blocked:{blocked.rule}"
                )
                raise
        sha = await ctx.services.workspaces.push(wt, self.remote)
        await audit.append(calls.who, "git.push", target, {"sha": sha})
        return sha

    async def _validate(self) -> dict[str, Any]:
        report = await run_validation(
            self.wt.path, self.checks, timeout_seconds=self.ctx.project.validation_timeout_seconds
        )
        data: dict[str, Any] = report.to_json()
        return data

    async def _budget_stop(self) -> RoleResult | None:
        services, issue = self.ctx.services, self.ctx.issue
        reason = await over_budget(
            services.storage.runs, services.roles.budgets, issue.project, issue.iid
        )
        if reason is None:
            return None
        await services.notifier.notify(
            Event(EventKind.BUDGET, issue.project, issue.iid, issue.title, reason)
        )
        return RoleResult(Outcome.BLOCKED, f"Budget stop: {reason}")

    async def _learnings(self, turn: Turn) -> list[LearningItem]:
        ctx = self.ctx
        items = parse_learnings(turn.output)
        if not items:
            prompt = self.prompts.render("learnings", learnings_format=LEARNINGS_FORMAT)
            asked = await ask_agent(
                ctx, "ask-learnings", TaskKind.IMPLEMENT, prompt, self.wt.path,
                session_id=turn.session_id,
            )  # fmt: skip
            items = parse_learnings(asked.output)
        if not items:
            return []

        async def store() -> list[int]:
            return [
                await ctx.services.storage.learnings.add(
                    ctx.issue.project, ctx.issue.iid, item.kind, item.text, ctx.run.id
                )
                for item in items
            ]

        await ctx.step("store-learnings", store)
        await ctx.note("learnings", learnings_markdown(items))
        return items

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
        return {"iid": mr.iid, "web_url": mr.web_url, "sha": mr.sha}

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
            ]
        )
        await ctx.note("handoff", body)
        await ctx.note("handoff", body, on="mr", iid=int(mr["iid"]))


__all__ = ["GO", "DevRole", "outside_owned"]
