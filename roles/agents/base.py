"""The one interface every coding-agent adapter implements.

A role hands an agent a task (what kind of work, the prompt, the worktree, the session to
resume) and gets back a result (did it finish, the final message, the session id for the
next turn, where the transcript is, what it cost). Adapters hide each CLI's flags and output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class TaskKind(StrEnum):
    PLAN = "plan"
    IMPLEMENT = "implement"
    FIX = "fix"
    REVIEW = "review"
    DIAGNOSE = "diagnose"


@dataclass(frozen=True, slots=True)
class AgentTask:
    kind: TaskKind
    prompt: str
    workspace: Path  # the agent's working directory (a git worktree, or a scratch dir for plans)
    transcript_dir: Path  # where the adapter saves this turn's transcript
    session_id: str | None = None  # resume this agent session when the CLI supports it
    timeout_seconds: float = 1800.0
    label: str = ""  # for logs and transcript file names, e.g. "demo/app#3 dev attempt 1"


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentResult:
    ok: bool  # the agent exited normally (exit status 0, not timed out)
    output: str  # the agent's final message (what the role parses)
    transcript: Path  # the saved transcript of this turn
    session_id: str | None = None
    usage: Usage | None = None  # None when the agent reports nothing
    exit_code: int | None = None
    timed_out: bool = False
    error: str | None = None  # why it is not ok, for notes and logs


class Agent(Protocol):
    """A coding agent crewline can run; implementations live beside this module."""

    name: str

    async def run(self, task: AgentTask) -> AgentResult: ...


class AgentConfigError(ValueError):
    """An agent cannot be built from its settings (unknown kind, missing command...)."""
