"""Gemini CLI headless mode: ``gemini -p PROMPT --output-format json``, one JSON object.

Command line::

    gemini -p PROMPT --output-format json [--model M] [--approval-mode auto_edit] [args]
           [--resume SESSION]

Turns that change code run with ``--approval-mode auto_edit`` so file edits need no human;
plans keep the default mode. Operator ``args`` that set an approval mode (or ``--yolo``)
win. A prompt too long for one argument goes on stdin, which headless Gemini reads as
context for a short ``-p`` instruction.

Fields read: ``response`` (the output), ``session_id`` (newer CLIs print it; ``--resume``
takes it), ``error`` (``type``, ``message``) and ``stats.models.<model>.tokens``: ``prompt``
counts as tokens in, ``candidates`` plus ``thoughts`` as tokens out. Gemini reports no cost.
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

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        inline = prompt_fits_argv(task.prompt)
        prompt_arg = task.prompt if inline else STDIN_INSTRUCTION
        argv = [self.executable, "-p", prompt_arg, "--output-format", "json"]
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
    data = load_json_object(process.stdout, "gemini")
    error = None
    if isinstance(data.get("error"), dict):
        problem = data["error"]
        error = f"gemini error {problem.get('type') or ''}: {problem.get('message')!r}"
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
