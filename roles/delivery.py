"""Delivering work on a branch, shared by the developer, review and QA roles.

An agent turn and the push of what it changed are ONE checkpointed step, so a crash inside
it redoes the turn on a worktree reopened from the last pushed work (never a duplicate
commit on the remote). Every pushed file is screened by the guard first, and every push is
audited. Validation converges: NO-GO goes back to the same agent session, up to a limit.
Every follow-up carries ``fresh_context`` for when the session cannot go on (see
``roles/agent_turn.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from forge.calls import check_fence, off_loop_if_large
from forge.guard import GuardBlocked
from roles.agent_turn import Context, Turn, ask_agent, run_agent
from roles.agents.base import TaskKind
from roles.compaction import LEARNINGS_FORMAT, LearningItem, learnings_markdown, parse_learnings
from roles.context import RunContext
from roles.engine.loop import RoleResult
from roles.pm.plan_notes import load_plan
from roles.prompts import Prompts
from roles.untrusted import Fence
from roles.validate import Check, ValidationReport, run_validation
from roles.workspace.worktree import Worktree
from workflow import Outcome

log = logging.getLogger(__name__)

AUTHOR = ("crewline", "crewline@localhost")


@asynccontextmanager
async def issue_worktree(ctx: RunContext) -> AsyncIterator[Worktree]:
    """The issue's worktree (its branch, else a fresh start from the target branch), leased
    for this run and removed whatever happens."""
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
        yield wt
    finally:
        await workspaces.close(wt)


@dataclass
class Converged:
    """Validation passed: the report, and the agent's last turn (for its learnings)."""

    report: ValidationReport
    turn: Turn


def project_checks(ctx: RunContext, acceptance: list[str]) -> list[Check]:
    return [Check(cmd, cmd, "project") for cmd in ctx.project.validation] + [
        Check(cmd, cmd, "acceptance") for cmd in acceptance
    ]


def guard_stop(blocked: GuardBlocked) -> RoleResult:
    return RoleResult(
        Outcome.BLOCKED,
        f"The change was not pushed: {blocked.reason} in `{blocked.where}` "
        f"(rule {blocked.rule}). A human must remove it from the branch's work.",
    )


class Delivery:
    def __init__(
        self, prompts: Prompts, ctx: RunContext, wt: Worktree, checks: list[Check]
    ) -> None:
        self.prompts = prompts
        self.ctx = ctx
        self.wt = wt
        self.checks = checks
        self.remote = wt.remote_sha  # what the next force-with-lease push expects

    async def agent_and_push(
        self,
        step: str,
        kind: TaskKind,
        prompt: str,
        session_id: str | None,
        context: Context | None = None,
    ) -> Turn:
        """The agent's turn and the push of its work, recorded together."""
        ctx = self.ctx

        async def turn_and_push() -> dict[str, Any]:
            result = await run_agent(
                ctx, step, kind, prompt, self.wt.path, session_id=session_id, context=context
            )
            await self.commit_and_push(f"{ctx.issue.title} (#{ctx.issue.iid}, {ctx.key} {step})")
            result["pushed"] = self.remote
            return result

        data = await ctx.step(step, turn_and_push)
        self.remote = data.get("pushed") or self.remote
        return Turn.of(data)

    async def fresh_context(self) -> str:
        """What a fresh agent session needs before a follow-up: the issue, the approved plan
        and the diff so far (the follow-up prompt itself says what failed)."""
        ctx, issue = self.ctx, self.ctx.issue
        loaded = await load_plan(ctx.gateway, issue.project, issue.iid)
        diff = await ctx.services.workspaces.diff(self.wt)
        return self.prompts.render(
            "resume",
            iid=issue.iid,
            project=issue.project,
            title=issue.title,
            branch=self.wt.branch,
            target_branch=self.wt.target_branch,
            description=issue.description or "(no description)",
            plan=loaded[1].to_markdown() if loaded else "(no approved plan on the issue)",
            diff=f"```diff\n{diff}\n```" if diff.strip() else "(no change yet)",
        )

    async def commit_and_push(self, message: str) -> None:
        workspaces = self.ctx.services.workspaces
        if await workspaces.commit_all(self.wt, message, *AUTHOR) is not None:
            self.remote = await self.screened_push()

    async def screened_push(self) -> str:
        """Push only what the guard passes: the branch's changed files are screened like
        any other write to GitLab, and the push is audited either way."""
        ctx, wt = self.ctx, self.wt
        calls = ctx.gateway.calls
        audit = ctx.services.storage.audit
        target = f"{ctx.issue.project}@{wt.branch}"
        workspaces = ctx.services.workspaces
        for path in await workspaces.changed_files(wt):
            file = wt.path / path
            if not await asyncio.to_thread(file.is_file):
                continue
            await self._screen(await asyncio.to_thread(file.read_bytes), path, target)
        # Commit messages are published with the push: an agent's own commits too.
        for sha, message in await workspaces.commit_messages(wt):
            await self._screen(message, f"commit {sha[:12]} message", target)
        await check_fence()  # a push is seen by others: only while the run holds its claim
        sha = await ctx.services.workspaces.push(wt, self.remote)
        await audit.append(calls.who, "git.push", target, {"sha": sha})
        return sha

    async def _screen(self, content: str | bytes, where: str, target: str) -> None:
        calls = self.ctx.gateway.calls
        try:
            await off_loop_if_large(
                len(content), lambda: calls.guard.screen_content(content, where=where)
            )
        except GuardBlocked as blocked:
            await self.ctx.services.storage.audit.append(
                calls.who, "git.push", target, {"path": where}, f"blocked:{blocked.rule}"
            )
            raise

    async def validate(self, step: str) -> ValidationReport:
        async def run() -> dict[str, Any]:
            report = await run_validation(
                self.wt.path,
                self.checks,
                timeout_seconds=self.ctx.project.validation_timeout_seconds,
                sandbox=self.ctx.services.sandbox,
            )
            data: dict[str, Any] = report.to_json()
            return data

        return ValidationReport.from_json(await self.ctx.step(step, run))

    async def converge(self, turn: Turn, limit: int, prefix: str = "") -> Converged | RoleResult:
        """Validate; on NO-GO send the failures back to the same session and push the fix;
        up to ``limit`` validations. A RoleResult says why it stopped (exhausted); a budget
        reached before a fix turn stops the run in that turn (roles/budget.py)."""
        for attempt in range(1, limit + 1):
            report = await self.validate(f"{prefix}validate-{attempt}")
            if report.go:
                return Converged(report, turn)
            if attempt == limit:
                return RoleResult(
                    Outcome.FAILED,
                    f"Validation still fails after {limit} attempts.\n\n{report.to_markdown()}",
                )
            feedback = report.feedback_for_agent()
            fence = Fence([feedback])
            prompt = self.prompts.render(
                "fix",
                untrusted_notice=fence.notice(),
                attempt=attempt + 1,
                max_attempts=limit,
                # Check output prints whatever the repository's code and tests print.
                feedback=fence.wrap(feedback, "failing checks and their output"),
                learnings_format=LEARNINGS_FORMAT,
            )
            turn = await self.agent_and_push(
                f"{prefix}fix-{attempt}", TaskKind.FIX, prompt, turn.session_id, self.fresh_context
            )
        raise AssertionError("unreachable: the loop returns on its last attempt")

    async def learnings(self, turn: Turn, prefix: str = "") -> list[LearningItem]:
        """The compaction gate: the agent's learnings, asked for once more if missing,
        stored and posted once."""
        ctx = self.ctx
        items = parse_learnings(turn.output)
        if not items:
            prompt = self.prompts.render("learnings", learnings_format=LEARNINGS_FORMAT)
            asked = await ask_agent(
                ctx, f"{prefix}ask-learnings", TaskKind.IMPLEMENT, prompt, self.wt.path,
                session_id=turn.session_id, context=self.fresh_context,
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

        await ctx.step(f"{prefix}store-learnings", store)
        await ctx.note(f"{prefix}learnings", learnings_markdown(items))
        return items
