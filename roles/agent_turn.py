"""One agent turn inside a run, as a checkpointed step: asked once, recorded once.

A restarted run gets the recorded answer back instead of paying for the turn again; the
usage the agent reported is added to the run in the same step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge import metrics
from roles.agents.base import AgentTask, TaskKind
from roles.context import RunContext

log = logging.getLogger(__name__)


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


async def run_agent(
    ctx: RunContext,
    step: str,
    kind: TaskKind,
    prompt: str,
    workspace: Path,
    *,
    session_id: str | None = None,
) -> dict[str, Any]:
    """One agent turn, not checkpointed (callers wrap it in a step with what must happen
    together with it, such as pushing the work)."""
    agent = ctx.services.agent_for(ctx.role)
    task = AgentTask(
        kind=kind,
        prompt=prompt,
        workspace=workspace,
        transcript_dir=ctx.run_dir,
        session_id=session_id,
        timeout_seconds=ctx.services.agent_timeout(ctx.role),
        label=f"{ctx.issue.ref} {ctx.key} {step}",
    )
    log.info(
        "agent turn: issue=%s run=%s step=%s agent=%s", ctx.issue.ref, ctx.key, step, agent.name
    )
    result = await metrics.agent_turn(agent.name, agent.run(task))
    if result.usage is not None:
        usage = result.usage
        await ctx.services.storage.runs.add_usage(
            ctx.run.id, usage.tokens_in, usage.tokens_out, usage.cost_usd
        )
    if result.session_id:
        await ctx.services.storage.runs.set_session(ctx.run.id, result.session_id)
    return {
        "ok": result.ok,
        "output": result.output,
        "session_id": result.session_id or session_id,
        "error": result.error,
        "transcript": str(result.transcript),
    }


async def ask_agent(
    ctx: RunContext,
    step: str,
    kind: TaskKind,
    prompt: str,
    workspace: Path,
    *,
    session_id: str | None = None,
) -> Turn:
    """One agent turn as a checkpointed step: a restarted run gets the recorded answer."""

    async def turn() -> dict[str, Any]:
        return await run_agent(ctx, step, kind, prompt, workspace, session_id=session_id)

    return Turn.of(await ctx.step(step, turn))
