"""The PM role (pm-ready -> pm-running -> plan-review): turns a goal into a plan.

It reads the issue, its discussion, the relevant learnings and any feedback on an earlier
plan, asks the agent for a plan in the strict format of ``roles/plan.py``, retries once
with the validation error, posts the plan as a note (once per run) and hands it to a human
at the plan gate. A plan still invalid stops the issue at blocked with the reason.
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
from roles.budget import over_budget
from roles.context import RunContext, Services
from roles.engine import GO, Admission, RoleResult, Verdict
from roles.notify import GateRequest
from roles.plan import PLAN_FORMAT, Plan, PlanError, parse_plan
from roles.plan_notes import latest_feedback
from roles.prompts import Prompts
from roles.untrusted import Fence
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
    reason = await over_budget(
        services.storage.runs, services.roles.budgets, issue.project, issue.iid
    )
    return GO if reason is None else Admission(Verdict.BLOCK, reason)


class PmRole:
    name = "pm"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts
        self.filers = FilerCheck()

    async def admit(self, services: Services, issue: Issue) -> Admission:
        refused = await self.filers.refusal(services, issue)
        if refused is not None:
            return Admission(Verdict.WAIT, refused)  # left alone, never claimed
        return await budget_admission(services, issue)

    async def run(self, ctx: RunContext) -> RoleResult:
        issue = await ctx.gateway.get_issue(ctx.issue.project, ctx.issue.iid)
        notes = await ctx.gateway.notes(issue.project, issue.iid)
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
        )
        scratch = ctx.run_dir / "scratch"
        scratch.mkdir(exist_ok=True)
        # After a question was answered, the same agent session goes on with the answer.
        earlier = await _earlier_session(ctx, notes)
        first = await ask_agent(
            ctx, "agent-plan", TaskKind.PLAN, prompt, scratch, session_id=earlier
        )
        plan, problem = _plan_or_problem(first.output, first.error)
        if plan is None:
            retry = (
                f"Your plan could not be used: {problem}\n\nAnswer again, fixing exactly "
                f"that.\n\n{PLAN_FORMAT}"
            )
            second = await ask_agent(
                ctx, "agent-plan-retry", TaskKind.PLAN, retry, scratch, session_id=first.session_id
            )
            plan, problem = _plan_or_problem(second.output, second.error)
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
        note = await ctx.note("plan", plan.to_markdown())
        gate = ctx.services.workflow.gate_state("plan").name
        return RoleResult(
            Outcome.SUCCEEDED,
            gate=GateRequest(
                project=issue.project,
                iid=issue.iid,
                title=issue.title,
                gate=gate,
                revision=str(note.id),
                summary=plan.to_markdown(),
                url=issue.web_url,
                filer=issue.author,
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


def _plan_or_problem(output: str, error: str | None) -> tuple[Plan | None, str]:
    if error and not output.strip():
        return None, f"the agent did not answer ({error})"
    try:
        return parse_plan(output), ""
    except PlanError as invalid:
        return None, str(invalid)
