"""Agents' answers carry no crewline marker.

Whatever an agent prints (a plan, a handoff, a review answer, a diagnosis, learnings, a
question) is posted by crewline in crewline's own notes, where hidden markers count. So
every agent a role runs is reached through :class:`Unmarked` (``Services.agent_for``): its
answer and error lose every ``<!-- crewline:... -->`` comment before any role reads them,
and an agent cannot forge a plan, a claim, a decision or a learning (decision 0034).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from forge.trust import defang
from roles.agents.base import Agent, AgentResult, AgentTask


class Unmarked:
    """``agent`` with the markers removed from what it answers; every other attribute
    (``can_resume``, ``settings``) is the agent's own."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.name = agent.name

    async def run(self, task: AgentTask) -> AgentResult:
        result = await self.agent.run(task)
        return replace(
            result,
            output=defang(result.output),
            error=None if result.error is None else defang(result.error),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)
