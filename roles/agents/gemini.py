"""Gemini CLI headless mode: ``gemini -p PROMPT --output-format json``, one JSON object.

Command line::

    gemini -p PROMPT --output-format json --skip-trust [--model M] [--approval-mode auto_edit]
           [args] [--resume SESSION]

``--skip-trust``: every worktree is a folder Gemini has never seen, and in an untrusted folder
Gemini 0.61 silently turns ``--approval-mode auto_edit`` back into ``default`` (no edits).
Sessions are kept per project directory under ``~/.gemini``; ``--resume <uuid>`` finds one
only from the directory it started in. A workspace may get ``.gemini/`` (project settings),
excluded from commits.

When Gemini fails it prints its JSON (``session_id``, ``error``: ``type``, ``message``,
``code``) on stderr, not stdout, and exits with that code (41: no auth method set)::

    {"session_id": "...", "error": {"type": "Error", "message": "Please set an Auth
     method ...", "code": 41}}

That JSON is read from stderr when stdout has none.

Turns that change code run with ``--approval-mode auto_edit`` so file edits need no human;
plans keep the default mode. Operator ``args`` that set an approval mode (or ``--yolo``)
win. A prompt too long for one argument goes on stdin, which headless Gemini reads as
context for a short ``-p`` instruction.

Fields read: ``response`` (the output), ``session_id`` (newer CLIs print it; ``--resume``
takes it), ``error`` (``type``, ``message``) and ``stats.models.<model>.tokens``: ``prompt``
counts as tokens in, ``candidates`` plus ``thoughts`` as tokens out. Gemini reports no cost.
"""

from __future__ import annotations

import json
import re
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
    optional_text,
    prompt_fits_argv,
)
from roles.agents.process import ProcessResult

STDIN_INSTRUCTION = "Carry out the task given on standard input."


class GeminiAgent(CliAgent):
    kind = "gemini"
    state_files = (".gemini/",)
    tested_versions = TestedVersions(tested="0.61.0", minimum="0.61.0", below="0.62.0")
    passed_flags = (
        "--prompt", "--output-format", "--skip-trust", "--approval-mode", "--resume", "--model",
    )  # fmt: skip

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        inline = prompt_fits_argv(task.prompt)
        prompt_arg = task.prompt if inline else STDIN_INSTRUCTION
        argv = [self.executable, "-p", prompt_arg, "--output-format", "json"]
        if not has_flag(self.settings.args, "--skip-trust"):
            argv.append("--skip-trust")
        if self.settings.model:
            argv += ["--model", self.settings.model]
        if task.kind is not TaskKind.PLAN and not has_flag(
            self.settings.args, "--approval-mode", "--yolo", "-y"
        ):
            argv += ["--approval-mode", "auto_edit"]
        argv += self.settings.args
        if task.session_id:
            argv += ["--resume", task.session_id]
        return Invocation(
            argv=argv,
            stdin=None if inline else task.prompt,
            prompt_arg=task.prompt if inline else None,
            parse=parse_gemini,
        )


def parse_gemini(process: ProcessResult) -> Parsed:
    data = _gemini_json(process)
    error = _error_text(data.get("error"))
    response = data.get("response")
    if not isinstance(response, str):
        if error is None:
            raise OutputError(
                "gemini's JSON has no 'response' text; expected `--output-format json`"
            )
        response = ""
    return Parsed(
        output=response.strip(),
        session_id=optional_text(data, "session_id", "gemini"),
        usage=_usage(data.get("stats")),
        error=error,
    )


def _gemini_json(process: ProcessResult) -> dict[str, Any]:
    """The JSON object on stdout, else the error object Gemini prints on stderr."""
    try:
        return load_json_object(process.stdout, "gemini")
    except OutputError:
        found = _error_object(process.stderr_tail)
        if found is None:
            raise
        return found


def _error_object(stderr: str) -> dict[str, Any] | None:
    """The last pretty-printed JSON object on stderr that carries an ``error``."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    for start in (m.start() for m in re.finditer(r"^\{", stderr, re.M)):
        try:
            value, _ = decoder.raw_decode(stderr, start)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("error"), dict | str):
            found = value
    return found


def _error_text(problem: Any) -> str | None:
    if problem is None:
        return None
    if not isinstance(problem, dict):
        return f"gemini error: {str(problem)[:300]}"
    code = problem.get("code")
    kind = problem.get("type") or "error"
    where = f"{kind}" + (f", code {code}" if code is not None else "")
    message = str(problem.get("message") or "no message")[:500]
    return f"gemini error ({where}): {message}"


def _usage(stats: Any) -> Usage | None:
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict) or not models:
        return None
    tokens_in = tokens_out = 0
    for name, metrics in models.items():
        tokens = metrics.get("tokens") if isinstance(metrics, dict) else None
        if not isinstance(tokens, dict):
            raise OutputError(f"gemini: stats.models.{name} has no 'tokens' object")
        tokens_in += count(tokens, "prompt", "gemini")
        tokens_out += count(tokens, "candidates", "gemini") + count(tokens, "thoughts", "gemini")
    return Usage(tokens_in=tokens_in, tokens_out=tokens_out)
