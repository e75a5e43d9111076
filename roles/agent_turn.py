"""One agent turn inside a run, as a checkpointed step: asked once, recorded once.

A restarted run gets the recorded answer back instead of paying for the turn again; the
usage the agent reported is added to the run in the same step.

Follow-up turns (a fix after NO-GO, the learnings re-ask, the PM's retry) normally continue
the agent's session. When that cannot work (the agent keeps no session, like aider; no session
id came back) or the resume fails, the follow-up is sent to a fresh session with ``context``
in front of it: the issue, the approved plan and the diff so far, so it stands alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge import metrics
from roles.agents.base import Agent, AgentResult, AgentTask, TaskKind
from roles.budget import BUDGETED_ROLES, BudgetHeld, budget_left, priced, turn_timeout
from roles.context import RunContext

log = logging.getLogger(__name__)

# Builds what a fresh session needs before a follow-up prompt (computed only when needed).
Context = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Turn:
    ok: bool
    output: str
    session_id: str | None
    error: str | None
    transcript: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Turn:
        return cls(
            ok=bool(data["ok"]),
            output=str(data["output"]),
            session_id=data.get("session_id"),
            error=data.get("error"),
            transcript=str(data.get("transcript", "")),
        )


def can_resume(agent: Agent) -> bool:
    """False for agents that keep no session between turns (adapters say so)."""
    return bool(getattr(agent, "can_resume", True))


async def run_agent(
    ctx: RunContext,
    step: str,
    kind: TaskKind,
    prompt: str,
    workspace: Path,
    *,
    session_id: str | None = None,
    context: Context | None = None,
) -> dict[str, Any]:
    """One agent turn, not checkpointed (callers wrap it in a step with what must happen
    together with it, such as pushing the work). ``context`` marks a follow-up: see above."""
    agent = ctx.services.agent_for(ctx.role)
    seconds = await _budgeted_timeout(ctx)
    standalone = context is not None and (session_id is None or not can_resume(agent))
    if standalone and context is not None:
        prompt, session_id = await context() + prompt, None
    log.info(
        "agent turn: issue=%s run=%s step=%s agent=%s session=%s%s",
        ctx.issue.ref,
        ctx.key,
        step,
        agent.name,
        session_id or "new",
        " (self-contained follow-up)" if standalone else "",
    )
    result = await _turn(ctx, agent, step, kind, prompt, workspace, session_id, seconds)
    if session_id and context is not None and not result.ok and not result.timed_out:
        log.warning(
            "agent turn: issue=%s run=%s step=%s: resuming session %s failed (%s); asking a "
            "fresh session with the whole context",
            ctx.issue.ref,
            ctx.key,
            step,
            session_id,
            result.error,
        )
        prompt, session_id = await context() + prompt, None
        seconds = await _budgeted_timeout(ctx)
        result = await _turn(ctx, agent, step, kind, prompt, workspace, None, seconds)
    return {
        "ok": result.ok,
        "output": result.output,
        "session_id": result.session_id or session_id,
        "error": result.error,
        "transcript": str(result.transcript),
    }


async def _turn(
    ctx: RunContext,
    agent: Agent,
    step: str,
    kind: TaskKind,
    prompt: str,
    workspace: Path,
    session_id: str | None,
    seconds: float,
) -> AgentResult:
    task = AgentTask(
        kind=kind,
        prompt=prompt,
        workspace=workspace,
        transcript_dir=ctx.run_dir,
        session_id=session_id,
        timeout_seconds=seconds,
        label=f"{ctx.issue.ref} {ctx.key} {step}",
    )
    result = await metrics.agent_turn(agent.name, agent.run(task))
    if result.usage is not None:
        usage = result.usage
        settings = getattr(agent, "settings", None)  # the adapters keep their AgentSettings
        cost = priced(
            ctx.services.roles.budgets, usage, getattr(settings, "model", None), agent.name
        )
        await ctx.services.storage.runs.add_usage(
            ctx.run.id, usage.tokens_in, usage.tokens_out, cost
        )
    if result.session_id:
        await ctx.services.storage.runs.set_session(ctx.run.id, result.session_id)
    return result


async def _budgeted_timeout(ctx: RunContext) -> float:
    """The turn's timeout: the agent's, cut to what the budget left buys. A cap already
    reached stops the run here (BudgetHeld) for the roles a budget holds."""
    configured = ctx.services.agent_timeout(ctx.role)
    if ctx.role not in BUDGETED_ROLES:
        return configured
    left = await budget_left(ctx.services, ctx.issue.project, ctx.issue.iid)
    if left.reason is not None:
        raise BudgetHeld(left.reason)
    return turn_timeout(ctx.services.roles.budgets, left, configured)


async def ask_agent(
    ctx: RunContext,
    step: str,
    kind: TaskKind,
    prompt: str,
    workspace: Path,
    *,
    session_id: str | None = None,
    context: Context | None = None,
) -> Turn:
    """One agent turn as a checkpointed step: a restarted run gets the recorded answer."""

    async def turn() -> dict[str, Any]:
        return await run_agent(
            ctx, step, kind, prompt, workspace, session_id=session_id, context=context
        )

    return Turn.of(await ctx.step(step, turn))
