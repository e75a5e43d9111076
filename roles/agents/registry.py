"""Which adapter runs which kind of agent: ``ADAPTERS``, the files any of them leaves in a
worktree, and ``build_agent``. The built-in demo agent is built by the engine."""

from __future__ import annotations

from roles.agents.aider import AiderAgent
from roles.agents.base import Agent, AgentConfigError
from roles.agents.claude import ClaudeAgent
from roles.agents.cli import CliAgent
from roles.agents.codex import CodexAgent
from roles.agents.command import CommandAgent
from roles.agents.gemini import GeminiAgent
from roles.sandbox import Sandbox
from roles.settings import AgentSettings

ADAPTERS: dict[str, type[CliAgent]] = {
    adapter.kind: adapter
    for adapter in (CodexAgent, ClaudeAgent, GeminiAgent, AiderAgent, CommandAgent)
}

# What any supported CLI leaves in its working directory (gitignore patterns): never committed.
AGENT_STATE_FILES: tuple[str, ...] = tuple(
    dict.fromkeys(pattern for adapter in ADAPTERS.values() for pattern in adapter.state_files)
)


def build_agent(name: str, settings: AgentSettings, sandbox: Sandbox | None = None) -> Agent:
    """The adapter for ``settings.kind``, running its CLI in ``sandbox``; AgentConfigError
    for a kind with no adapter here."""
    adapter = ADAPTERS.get(settings.kind)
    if adapter is None:
        raise AgentConfigError(
            f"agent {name!r}: kind {settings.kind!r} has no CLI adapter "
            f"(expected one of {', '.join(sorted(ADAPTERS))})"
        )
    return adapter(name, settings, sandbox=sandbox)
