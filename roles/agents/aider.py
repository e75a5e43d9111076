"""Aider scripted with ``--message``: one instruction, apply the edits, exit.

Command line::

    aider --message PROMPT --yes-always --no-auto-commits --no-gitignore --no-check-update
          --no-show-release-notes --no-analytics --no-pretty --chat-history-file F
          --input-history-file F [--edit-format diff] [--model M] [args]

crewline commits itself, so aider must not (``--no-auto-commits``) nor touch ``.gitignore``;
its history files go beside the transcript instead of into the worktree. What it still
writes there (``.aider.tags.cache.v4/``, the repo map's cache) matches ``.aider*``, which the
mirror's ``info/exclude`` keeps out of every commit. ``--no-analytics``: ``--yes-always``
would otherwise answer aider's first-run analytics question with yes. ``--edit-format diff``
unless the operator's ``args`` choose one: the ``whole`` format, which aider picks for many
models, writes crewline's fenced answer blocks (learnings) into files named after them.

A prompt too long for one argument is passed with ``--message-file``. Aider keeps no
resumable session: every follow-up prompt crewline sends it stands alone.

The output is what aider printed. Usage comes from its report lines, one per model call::

    Tokens: 12k sent, 1.2k cache write, 300 received. Cost: $0.01 message, $0.02 session.

Tokens sent (``k``/``M`` suffixes expanded; aider rounds them) add up as tokens in, received as
tokens out; the cost is the last ``session`` figure, since the process is the session.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from roles.agents.base import AgentTask, Usage
from roles.agents.cli import (
    CliAgent,
    Invocation,
    Parsed,
    TestedVersions,
    has_flag,
    prompt_fits_argv,
)
from roles.agents.process import ProcessResult

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_NUMBER = r"[\d.,]+[kKmM]?"
_REPORT = re.compile(
    rf"Tokens: (?P<sent>{_NUMBER}) sent,(?:\s*{_NUMBER} cache (?:write|hit),)*"
    rf"\s*(?P<received>{_NUMBER}) received\."
    rf"(?:\s*Cost: \$(?P<message>[\d.,]+) message, \$(?P<session>[\d.,]+) session\.)?"
)
_SCALE = {"k": 1_000, "m": 1_000_000}
_GIT_FAILED = re.compile(r"^Cmd\('git'\) failed due to: (?P<why>.*)$", re.MULTILINE)


# aider writes a placeholder git identity into the repository's config when none is set, and
# the shared repository is read-only in the sandbox (it crashed there): it gets one from the
# environment instead (git >= 2.31 reads GIT_CONFIG_COUNT). crewline makes the commits anyway.
GIT_IDENTITY = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "user.name",
    "GIT_CONFIG_VALUE_0": "aider (crewline)",
    "GIT_CONFIG_KEY_1": "user.email",
    "GIT_CONFIG_VALUE_1": "aider@crewline.invalid",
}


class AiderAgent(CliAgent):
    kind = "aider"
    state_files = (".aider*",)
    tested_versions = TestedVersions(tested="0.86.2", minimum="0.86.0", below="0.87.0")
    can_resume = False
    passed_flags = (
        "--message", "--message-file", "--yes-always", "--no-auto-commits", "--no-gitignore",
        "--no-check-update", "--no-show-release-notes", "--no-analytics", "--no-pretty",
        "--chat-history-file", "--input-history-file", "--edit-format", "--model",
    )  # fmt: skip

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        if prompt_fits_argv(task.prompt):
            argv = [self.executable, "--message", task.prompt]
        else:
            message_file = transcript.with_suffix(".prompt.txt")
            await _write_text(message_file, task.prompt)
            argv = [self.executable, "--message-file", str(message_file)]
        argv += ["--yes-always", "--no-auto-commits", "--no-gitignore", "--no-check-update"]
        argv += ["--no-show-release-notes", "--no-analytics", "--no-pretty"]
        argv += ["--chat-history-file", str(transcript.with_suffix(".aider-chat.md"))]
        argv += ["--input-history-file", str(transcript.with_suffix(".aider-input.txt"))]
        if not has_flag(self.settings.args, "--edit-format", "--chat-mode", "--architect"):
            argv += ["--edit-format", "diff"]
        if self.settings.model:
            argv += ["--model", self.settings.model]
        argv += self.settings.args
        return Invocation(
            argv=argv, prompt_arg=task.prompt, parse=parse_aider, env=dict(GIT_IDENTITY)
        )


def parse_aider(process: ProcessResult) -> Parsed:
    output = _ANSI.sub("", process.stdout).strip()
    return Parsed(output=output, usage=aider_usage(process.stdout), error=git_failure(output))


def git_failure(output: str) -> str | None:
    """Why aider's git failed, when it did: aider stages every file it creates (``git add``)
    and, when git fails, drops the edits of that reply yet exits 0, so the turn would pass for
    one that changed nothing (and a fix turn would then edit a file that is not there)."""
    found = _GIT_FAILED.search(output)
    if found is None:
        return None
    following = output[found.end() :].splitlines()[:8]
    stderr = next((line.strip() for line in following if line.strip().startswith("stderr:")), "")
    detail = found["why"].strip() + (f"; {stderr}" if stderr else "")
    return (
        f"aider's git command failed and aider dropped its edits ({detail}): check that git "
        "can write this worktree's index and objects"
    )


def aider_usage(text: str) -> Usage | None:
    """Usage summed over aider's report lines (None when it printed none)."""
    reports = list(_REPORT.finditer(_ANSI.sub("", text)))
    if not reports:
        return None
    costs = [float(m["session"].replace(",", "")) for m in reports if m["session"]]
    return Usage(
        tokens_in=sum(_tokens(m["sent"]) for m in reports),
        tokens_out=sum(_tokens(m["received"]) for m in reports),
        cost_usd=costs[-1] if costs else 0.0,
    )


def _tokens(figure: str) -> int:
    figure = figure.replace(",", "")
    scale = _SCALE.get(figure[-1].lower(), 1)
    number = figure[:-1] if scale > 1 else figure
    return round(float(number) * scale)


async def _write_text(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")
