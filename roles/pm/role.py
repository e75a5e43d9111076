"""The PM role (pm-ready -> pm-running -> plan-review): turns a goal into a plan.

It reads the issue, its discussion, the relevant learnings and any feedback on an earlier
plan, asks the agent for a plan in the strict format of ``roles/pm/plan.py``, retries once
with the validation error, posts the plan as a note (once per run) and hands it to a human
at the plan gate. A plan still invalid stops the issue at blocked with the reason.

The agent works in a read-only checkout of the target branch at one path per issue (so a
CLI that finds sessions by working directory resumes after a question), and its prompt
carries the file tree. Acceptance checks must pass ``sh -n``; owned-path globs matching no
file are flagged in the plan note (``roles/pm/plan_checks.py``).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from forge.claims import ClaimMarker
from forge.gateway import NOTE_MARKER, note_marker
from forge.types import Issue, Note
from roles.agent_turn import ask_agent
from roles.agents.base import TaskKind
from roles.authors import FilerCheck, heard_authors
from roles.budget import hold_notice, over_budget
from roles.context import RunContext, Services
from roles.engine.loop import GO, Admission, RoleResult, Verdict
from roles.gates.decide import issue_filer
from roles.notify import GateRequest
from roles.pm.plan import PLAN_FORMAT, Plan, PlanError, parse_plan
from roles.pm.plan_checks import file_tree, shell_syntax_errors, unmatched_note, unmatched_owned
from roles.pm.plan_notes import latest_feedback
from roles.prompts import Prompts
from roles.untrusted import Fence
from roles.workspace.worktree import PlanningCheckout
from workflow import Outcome

NOTE_TAG = NOTE_MARKER.split("{", 1)[0]  # "<!-- crewline:note key="


_CONVERSATION = re.compile(r"<!-- crewline:note key=(question|answer):\S+ -->")


def _said(note: Note) -> bool:
    if note.system or ClaimMarker.parse(note.body) is not None:
        return False
    # crewline's own notes are left out, except the agent's questions and their answers.
    return NOTE_TAG not in note.body or _CONVERSATION.search(note.body) is not None


def human_discussion(
    notes: list[Note], fence: Fence, heard: Collection[str], limit: int = 20
) -> str:
    """What people said on the issue, including questions asked and answered, each comment
    fenced as data; comments by authors not in ``heard`` are left out."""
    said = [
        fence.wrap(note.body.strip(), f"comment by @{note.author}")
        for note in notes
        if _said(note) and note.author in heard
    ]
    return "\n\n".join(said[-limit:]) or "(none)"


def question_key(run_key: str) -> str:
    return f"question:{run_key}"


async def relevant_learnings(services: Services, issue: Issue, limit: int = 5) -> str:
    found = await services.storage.learnings.search(
        f"{issue.title} {issue.description}", project=issue.project, limit=limit
    )
    return "\n".join(f"- ({item.kind}, #{item.iid}) {item.text}" for item in found) or "(none yet)"


async def budget_admission(services: Services, issue: Issue) -> Admission:
    """Under every cap, or WAIT at the ready state with one notice a day (roles/budget.py),
    posted when the engine acts on the answer: the issue goes on by itself when the day
    rolls over or the cap is raised."""
    reason = await over_budget(services, issue.project, issue.iid)
    if reason is None:
        return GO
    return Admission(
        Verdict.WAIT, f"budget: {reason}", announce=lambda: hold_notice(services, issue, reason)
    )


class PmRole:
    name = "pm"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts
        self.filers = FilerCheck()

    async def admit(self, services: Services, issue: Issue) -> Admission:
        refused = await self.filers.refusal(services, issue)
        if refused is not None:  # left alone, never claimed
            return Admission(
                Verdict.WAIT, refused, announce=lambda: self.filers.tell(services, issue, refused)
            )
        return await budget_admission(services, issue)

    async def run(self, ctx: RunContext) -> RoleResult:
        issue = await ctx.issue_at_start()
        workspaces = ctx.services.workspaces
        checkout = await workspaces.open_planning(
            issue.project,
            f"{ctx.gateway.url}/{issue.project}.git",
            issue.iid,
            ctx.project.target_branch,
        )
        try:
            return await self._plan(ctx, issue, checkout)
        finally:
            await workspaces.close_planning(issue.project, issue.iid)

    async def _plan(self, ctx: RunContext, issue: Issue, checkout: PlanningCheckout) -> RoleResult:
        notes = await ctx.notes_at_start()
        fence = Fence([issue.title, issue.description, *(note.body for note in notes)])
        heard_by_agent = await heard_authors(ctx.services, ctx.project, notes)
        prompt = self.prompts.render(
            "plan",
            untrusted_notice=fence.notice(),
            project=issue.project,
            target_branch=ctx.project.target_branch,
            iid=issue.iid,
            title=fence.inline(issue.title),
            description=fence.wrap(
                issue.description or "(no description)", f"issue description by @{issue.author}"
            ),
            discussion=human_discussion(notes, fence, heard_by_agent),
            learnings=await relevant_learnings(ctx.services, issue),
            feedback=latest_feedback(notes) or "(none)",
            format=PLAN_FORMAT,
            sha=checkout.sha[:12],
            tree=file_tree(checkout.files),
        )

        async def whole_request() -> str:
            return prompt + "\n\n"

        # After a question was answered, the same agent session goes on with the answer.
        earlier = await _earlier_session(ctx, notes)
        first = await ask_agent(
            ctx, "agent-plan", TaskKind.PLAN, prompt, checkout.path, session_id=earlier
        )
        plan, problem = await _plan_or_problem(first.output, first.error)
        if plan is None:
            retry = (
                f"Your plan could not be used: {problem}\n\nAnswer again, fixing exactly "
                f"that.\n\n{PLAN_FORMAT}"
            )
            second = await ask_agent(
                ctx, "agent-plan-retry", TaskKind.PLAN, retry, checkout.path,
                session_id=first.session_id, context=whole_request,
            )  # fmt: skip
            plan, problem = await _plan_or_problem(second.output, second.error)
        if plan is None:
            return RoleResult(
                Outcome.FAILED, f"The PM agent's plan is still invalid after a retry: {problem}"
            )
        if plan.questions:
            asked = "\n".join(f"- {question}" for question in plan.questions)
            await ctx.gateway.upsert_note(
                issue.project, issue.iid, question_key(ctx.key),
                f"The PM agent needs answers before it can plan this:\n\n{asked}",
            )  # fmt: skip
            return RoleResult(Outcome.NEEDS_INPUT)
        body = plan.to_markdown()
        unmatched = unmatched_owned(plan.owned_paths, checkout.files)
        if unmatched:
            body += "\n\n" + unmatched_note(unmatched, ctx.project.target_branch)
        note = await ctx.note("plan", body, quoted=True)
        gate = ctx.services.workflow.gate_state("plan").name
        return RoleResult(
            Outcome.SUCCEEDED,
            gate=GateRequest(
                project=issue.project,
                iid=issue.iid,
                title=issue.title,
                gate=gate,
                revision=str(note.id),
                summary=body,
                url=issue.web_url,
                filer=issue_filer(issue),
            ),
        )


async def _earlier_session(ctx: RunContext, notes: list[Note]) -> str | None:
    """The agent session of the previous PM attempt when it asked a question (and this
    host ran it): the answer continues that conversation."""
    previous = f"pm-{ctx.attempt - 1}"
    asked = note_marker(question_key(previous))
    if ctx.attempt <= 1 or not any(asked in note.body for note in notes):
        return None
    run = await ctx.services.storage.runs.find(
        ctx.issue.project, ctx.issue.iid, "pm", ctx.attempt - 1
    )
    return run.session_id if run is not None else None


async def _plan_or_problem(output: str, error: str | None) -> tuple[Plan | None, str]:
    if error and not output.strip():
        return None, f"the agent did not answer ({error})"
    try:
        plan = parse_plan(output)
    except PlanError as invalid:
        return None, str(invalid)
    syntax = await shell_syntax_errors(plan.acceptance)
    if syntax:
        return None, "; ".join(syntax)
    return plan, ""
