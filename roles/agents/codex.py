"""OpenAI Codex CLI: ``codex exec --json``, one JSON event per stdout line.

New turn::

    codex exec --json --skip-git-repo-check --sandbox workspace-write [--model M] [args] -

Resumed turn: the same options, then ``resume <session id> -``. The prompt goes on stdin
(``-``), so its size is not limited by the kernel's argument cap. Plans run with
``--sandbox read-only``; operator ``args`` that set ``--sandbox`` (or bypass it) win.
``--skip-git-repo-check`` because plans run in a scratch directory, not a repository.

Events read: ``thread.started`` (``thread_id``: the session to resume), ``item.completed``
with an ``agent_message`` item (the last one is the output), ``turn.completed`` (``usage``:
``input_tokens``, ``output_tokens``; Codex reports no cost), ``turn.failed`` and ``error``.
Events are parsed as they stream, so a long run's output never has to fit in memory.

Offline, Codex does not give up: it prints ``error`` events ("Reconnecting... waiting for
network (Connection failed: ...)") for as long as it is left running. After
``RECONNECTS_TO_GIVE_UP`` of them in a row the turn ends at once with that error instead of at
crewline's timeout. Its workspace-write sandbox needs a helper Codex creates under
``$CODEX_HOME``, and Codex 0.171 refuses to create it under a temporary directory: keep
``CODEX_HOME`` (default ``~/.codex``) out of ``/tmp``, or every command fails with "bwrap:
execvp codex-linux-sandbox". That sandbox nests inside crewline's bubblewrap one (a user
namespace inside its namespaces) and is kept: it also cuts the network for the commands the
model runs (docs/decisions/0026). Codex leaves nothing in the worktree (its sessions live in
``$CODEX_HOME``); ``.codex/`` is excluded in case a project-level config is written there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from roles.agents.base import AgentTask, TaskKind, Usage
from roles.agents.cli import (
    CliAgent,
    Invocation,
    OutputError,
    Parsed,
    TestedVersions,
    count,
    has_flag,
)
from roles.agents.process import ProcessResult

RECONNECTS_TO_GIVE_UP = 3
_RECONNECTING = "reconnecting"


class CodexAgent(CliAgent):
    kind = "codex"
    state_files = (".codex/",)
    tested_versions = TestedVersions(tested="0.171.0", minimum="0.171.0", below="0.172.0")
    help_args = ("exec", "--help")
    passed_flags = ("--json", "--skip-git-repo-check", "--sandbox", "--model")
    login_args = ("login", "status")
    login_fix = "run `codex login` as the user crewline runs as (or `codex login --with-api-key`)"

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        argv = [self.executable, "exec", "--json", "--skip-git-repo-check"]
        if not has_flag(
            self.settings.args, "--sandbox", "-s", "--dangerously-bypass-approvals-and-sandbox"
        ):
            sandbox = "read-only" if task.kind is TaskKind.PLAN else "workspace-write"
            argv += ["--sandbox", sandbox]
        if self.settings.model:
            argv += ["--model", self.settings.model]
        argv += self.settings.args
        if task.session_id:
            argv += ["resume", task.session_id]
        argv.append("-")
        events = CodexEvents()
        return Invocation(
            argv=argv, stdin=task.prompt, on_stdout_line=events.feed, parse=events.parsed
        )


class CodexEvents:
    """Accumulates what crewline needs from the ``codex exec --json`` event stream."""

    def __init__(self) -> None:
        self.events = 0
        self.thread_id: str | None = None
        self.message: str | None = None
        self.error: str | None = None
        self.usage: Usage | None = None
        self.problem: str | None = None
        self.reconnects = 0  # "Reconnecting..." error events in a row
        self.gave_up = False

    def feed(self, line: str) -> bool:
        """Take one stdout line; True when the turn cannot succeed any more (stop it now)."""
        line = line.strip()
        if not line:
            return False
        try:
            event = json.loads(line)
        except ValueError:
            return False  # not an event (a stray notice); the transcript keeps it
        if not isinstance(event, dict):
            return False
        self.events += 1
        try:
            self._apply(event)
        except OutputError as exc:
            self.problem = self.problem or str(exc)
        return self._offline(event)

    def _offline(self, event: dict[str, Any]) -> bool:
        message = event.get("message")
        if event.get("type") != "error" or not isinstance(message, str):
            self.reconnects = 0
            return False
        if _RECONNECTING not in message.lower():
            return False
        self.reconnects += 1
        if self.reconnects < RECONNECTS_TO_GIVE_UP or self.gave_up:
            return False
        self.gave_up = True
        self.error = (
            f"codex cannot reach its model provider ({message}; {self.reconnects} times in a "
            "row): check the network, the provider's base_url and the API key, then retry"
        )
        return True

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            self.thread_id = event["thread_id"] or self.thread_id
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                text = item.get("text")
                if not isinstance(text, str):
                    raise OutputError(f"codex: agent_message item without text: {item!r:.200}")
                self.message = text
        elif kind == "turn.completed":
            self.error = None  # an earlier error event was recovered from
            usage = event.get("usage")
            if isinstance(usage, dict):
                before = self.usage or Usage()
                self.usage = Usage(
                    tokens_in=before.tokens_in + count(usage, "input_tokens", "codex"),
                    tokens_out=before.tokens_out + count(usage, "output_tokens", "codex"),
                )
        elif kind == "turn.failed":
            error = event.get("error")
            reason = error.get("message") if isinstance(error, dict) else error
            self.error = f"codex turn failed: {_message(reason)}"
        elif kind == "error":
            self.error = f"codex error: {_message(event.get('message'))}"

    def parsed(self, process: ProcessResult) -> Parsed:
        if self.events == 0:
            raise OutputError(
                "codex printed no JSON events on stdout; expected `codex exec --json` JSONL"
            )
        if self.problem:
            raise OutputError(self.problem)
        if self.message is None and self.error is None and not process.timed_out:
            raise OutputError("codex finished without an agent_message item")
        return Parsed(
            output=(self.message or "").strip(),
            session_id=self.thread_id,
            usage=self.usage,
            error=self.error,
        )


def _message(value: Any) -> str:
    return value if isinstance(value, str) and value else repr(value)
