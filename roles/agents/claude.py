"""Claude Code: ``claude -p --output-format json``, one JSON result object on stdout.

Command line::

    claude -p --output-format json [--model M] [--permission-mode acceptEdits] [args]
           [--resume SESSION]

The prompt goes on stdin (``-p`` reads it there when no prompt argument is given), so its
size is not limited by the kernel's argument cap. Turns that change code run with
``--permission-mode acceptEdits`` so file edits need no human; plans keep the default mode
(no edits). Operator ``args`` that set a permission mode (or skip permissions) win.

Claude Code keeps its sessions under ``~/.claude/projects/<working directory>``, so a resumed
turn must run in the directory of the first one (crewline keeps one directory per issue and
role). In the worktree it may leave ``.claude/`` (local settings) and ``CLAUDE.local.md``:
both are excluded from commits.

``is_error: true`` is a failure whatever the ``subtype`` says: logged out, Claude Code 2.1
prints ``subtype: "success"``, ``is_error: true`` and ``result: "Not logged in · Please run
/login"`` (exit status 1).

Result fields read: ``result`` (the output), ``session_id``, ``is_error`` and ``subtype``,
``total_cost_usd`` and ``usage`` (``input_tokens`` plus the cache creation/read input
tokens count as tokens in; ``output_tokens`` as tokens out).
"""

from __future__ import annotations

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
    load_json_object,
    money,
    optional_text,
)
from roles.agents.process import ProcessResult

_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class ClaudeAgent(CliAgent):
    kind = "claude"
    state_files = (".claude/", "CLAUDE.local.md")
    tested_versions = TestedVersions(tested="2.1.197", minimum="2.1.0", below="2.2.0")
    passed_flags = ("--print", "--output-format", "--permission-mode", "--resume", "--model")
    login_args = ("auth", "status")
    login_fix = (
        "run `claude auth login` as the user crewline runs as, or set ANTHROPIC_API_KEY and "
        "add it to the agent's env_allow"
    )

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        argv = [self.executable, "-p", "--output-format", "json"]
        if self.settings.model:
            argv += ["--model", self.settings.model]
        if task.kind is not TaskKind.PLAN and not has_flag(
            self.settings.args, "--permission-mode", "--dangerously-skip-permissions"
        ):
            argv += ["--permission-mode", "acceptEdits"]
        argv += self.settings.args
        if task.session_id:
            argv += ["--resume", task.session_id]
        return Invocation(argv=argv, stdin=task.prompt, parse=parse_claude)


def parse_claude(process: ProcessResult) -> Parsed:
    data = load_json_object(process.stdout, "claude")
    is_error = data.get("is_error") is True
    result = data.get("result")
    if not isinstance(result, str):
        if not is_error:
            raise OutputError(
                "claude's JSON has no 'result' text; expected the `--output-format json` result"
            )
        result = ""
    error = None
    if is_error:
        subtype = data.get("subtype")
        # "success" beside is_error is how a refused turn (not logged in) looks: not a kind.
        kind = f" ({subtype})" if isinstance(subtype, str) and subtype != "success" else ""
        error = f"claude reported an error{kind}: " + (result[:300] or "no message")
    return Parsed(
        output=result.strip(),
        session_id=optional_text(data, "session_id", "claude"),
        usage=_usage(data),
        error=error,
    )


def _usage(data: dict[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict) and "total_cost_usd" not in data:
        return None
    usage = usage if isinstance(usage, dict) else {}
    return Usage(
        tokens_in=sum(count(usage, key, "claude") for key in _INPUT_KEYS),
        tokens_out=count(usage, "output_tokens", "claude"),
        cost_usd=money(data, "total_cost_usd", "claude"),
    )
