"""What every CLI adapter shares: settings checks, one run of the process, and turning the
process outcome plus the parsed output into an ``AgentResult``.

An adapter only says how to invoke its CLI for a task (``Invocation``) and how to read what
the CLI printed (``Invocation.parse``, raising ``OutputError`` when the output is not what
the CLI documents).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from roles.agents import process as agent_process
from roles.agents.base import AgentConfigError, AgentResult, AgentTask, Usage
from roles.agents.process import (
    KILL_GRACE_SECONDS,
    ProcessResult,
    agent_environment,
    env_allow_list,
    exit_text,
    new_transcript,
    run_process,
)
from roles.sandbox import Sandbox
from roles.settings import AgentSettings

log = logging.getLogger(__name__)

# One argv entry is capped by the kernel (MAX_ARG_STRLEN, 128 KiB); stay well below it.
MAX_PROMPT_ARG_BYTES = 100_000
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")


class OutputError(Exception):
    """The agent's output is not what its CLI documents."""


@dataclass(frozen=True, slots=True)
class Parsed:
    output: str
    session_id: str | None = None
    usage: Usage | None = None
    error: str | None = None  # the agent reported a failure in its own output


@dataclass(slots=True)
class Invocation:
    argv: list[str]
    parse: Callable[[ProcessResult], Parsed]
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # set by crewline, beside the allow-list
    # Sees each stdout line as it arrives; returning True ends the turn at once (the process
    # group is stopped) because the output says the agent can no longer succeed.
    on_stdout_line: Callable[[str], bool | None] | None = None
    prompt_arg: str | None = None  # the argv entry elided from the transcript


@dataclass(frozen=True, slots=True)
class TestedVersions:
    """The CLI versions an adapter was proven against: ``tested`` exactly (the contract tests),
    and the range ``[minimum, below)`` whose output and flags it is expected to understand."""

    tested: str
    minimum: str
    below: str

    def accepts(self, version: str) -> bool:
        return version_key(self.minimum) <= version_key(version) < version_key(self.below)

    def describe(self) -> str:
        return f">= {self.minimum}, < {self.below} (tested with {self.tested})"


def version_key(version: str) -> tuple[int, ...]:
    """``"0.86.2"`` -> ``(0, 86, 2)``; a pre-release suffix is ignored."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a version number like 1.2.3")
    return tuple(int(part) for part in match.group(0).split("."))


class CliAgent(ABC):
    """An agent run as one external process per turn."""

    kind: ClassVar[str]
    # gitignore patterns of what the CLI leaves in its working directory: excluded from every
    # commit through the mirror's info/exclude (see roles/workspace/workspaces.py).
    state_files: ClassVar[tuple[str, ...]] = ()
    tested_versions: ClassVar[TestedVersions | None] = None  # None: any version (command)
    can_resume: ClassVar[bool] = True  # False: every follow-up prompt must stand alone
    # For `crewline doctor`: where the CLI lists its options, the flags crewline passes (each
    # must appear there), and a command that says whether it is logged in without a model
    # call (exit status 0: logged in), with what to do when it is not.
    help_args: ClassVar[tuple[str, ...]] = ("--help",)
    passed_flags: ClassVar[tuple[str, ...]] = ()
    login_args: ClassVar[tuple[str, ...] | None] = None
    login_fix: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        settings: AgentSettings,
        *,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
        sandbox: Sandbox | None = None,
    ) -> None:
        if settings.kind != self.kind:
            raise AgentConfigError(
                f"agent {name!r}: kind {settings.kind!r} given to the {self.kind} adapter"
            )
        executable = settings.executable()
        if not executable:
            raise AgentConfigError(f"agent {name!r}: no executable to run")
        self.name = name
        self.settings = settings
        self.executable = executable
        self.env_allow = env_allow_list(settings.env_allow)
        self.kill_grace_seconds = kill_grace_seconds
        self.sandbox = sandbox  # None: unconfined (tests); the composition root passes one

    @abstractmethod
    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        """How to run this CLI for ``task``; ``transcript`` names this turn's files."""

    async def run(self, task: AgentTask) -> AgentResult:
        transcript = await asyncio.to_thread(new_transcript, task.transcript_dir, task.kind.value)
        if task.session_id is not None and not _SESSION_ID.fullmatch(task.session_id):
            error = f"{self.name}: refusing to resume the malformed session id {task.session_id!r}"
            await asyncio.to_thread(_append, transcript, f"--- {error} ---\n")
            return AgentResult(ok=False, output="", transcript=transcript, error=error)
        invocation = await self.invocation(task, transcript)
        # The operator's agent timeout caps whatever the role asks for.
        timeout = min(task.timeout_seconds, self.settings.timeout_seconds)
        process = await run_process(
            invocation.argv,
            cwd=task.workspace,
            env=agent_environment(self.env_allow, invocation.env),
            transcript=transcript,
            timeout_seconds=timeout,
            stdin=invocation.stdin,
            display=_display(invocation),
            notes={"agent": f"{self.name} ({self.kind})", "task": _task_note(task)},
            on_stdout_line=invocation.on_stdout_line,
            grace=self.kill_grace_seconds,
            sandbox=self.sandbox,
            # This turn's transcript directory: scratch space and the prompt file live there.
            writable=[task.transcript_dir],
        )
        result = self._result(task, invocation, process, timeout)
        log.info(
            "agent %s %s %s: ok=%s exit=%s %.1fs usage=%s transcript=%s",
            self.name,
            task.kind.value,
            task.label or "-",
            result.ok,
            result.exit_code,
            process.duration_seconds,
            result.usage,
            transcript,
        )
        return result

    def _result(
        self, task: AgentTask, invocation: Invocation, process: ProcessResult, timeout: float
    ) -> AgentResult:
        def failed(error: str, parsed: Parsed | None = None) -> AgentResult:
            return AgentResult(
                ok=False,
                output=parsed.output if parsed else "",
                transcript=process.transcript,
                session_id=(parsed.session_id if parsed else None) or task.session_id,
                usage=parsed.usage if parsed else None,
                exit_code=process.exit_code,
                timed_out=process.timed_out,
                error=f"{self.name}: {error}",
            )

        if process.start_error:
            return failed(process.start_error)
        parsed: Parsed | None = None
        problem: str | None = None
        try:
            parsed = invocation.parse(process)
        except OutputError as exc:
            problem = str(exc)
            if process.stdout_truncated:
                problem += (
                    f"; stdout exceeded {agent_process.STDOUT_LIMIT} bytes, only its tail was kept"
                )
        if process.stopped_early:
            reason = (parsed.error if parsed else None) or problem or "its output said so"
            return failed(f"stopped early: {reason}", parsed)
        if process.timed_out:
            return failed(f"timed out after {timeout:g} s; its process group was killed", parsed)
        if process.exit_code != 0:
            reason = (parsed.error if parsed else None) or _stderr_excerpt(process.stderr_tail)
            return failed(exit_text(process.exit_code) + (f": {reason}" if reason else ""), parsed)
        if parsed is None:
            return failed(f"unreadable output: {problem} (transcript: {process.transcript})")
        if parsed.error:
            return failed(parsed.error, parsed)
        return AgentResult(
            ok=True,
            output=parsed.output,
            transcript=process.transcript,
            session_id=parsed.session_id or task.session_id,
            usage=parsed.usage,
            exit_code=process.exit_code,
        )


def has_flag(args: Sequence[str], *flags: str) -> bool:
    """True when the operator's extra ``args`` already set one of ``flags``."""
    return any(arg == flag or arg.startswith(flag + "=") for arg in args for flag in flags)


def prompt_fits_argv(prompt: str) -> bool:
    return len(prompt.encode()) <= MAX_PROMPT_ARG_BYTES


def load_json_object(stdout: str, cli: str) -> dict[str, Any]:
    """The JSON object a CLI printed; tolerates notice lines printed before it."""
    text = stdout.strip()
    if not text:
        raise OutputError(f"{cli} printed nothing on stdout; expected one JSON object")
    try:
        value = json.loads(text)
    except ValueError:
        value = _last_json_line(text)
        if value is None:
            raise OutputError(
                f"{cli} did not print JSON on stdout (it starts with {text[:80]!r})"
            ) from None
    if not isinstance(value, dict):
        raise OutputError(f"{cli} printed JSON {type(value).__name__}, expected an object")
    return value


def count(container: dict[str, Any], key: str, cli: str) -> int:
    """A non-negative token count (0 when absent)."""
    value = container.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OutputError(f"{cli}: {key} is {value!r}, expected a non-negative integer")
    return value


def money(container: dict[str, Any], key: str, cli: str) -> float:
    """A non-negative amount in USD (0.0 when absent)."""
    value = container.get(key, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise OutputError(f"{cli}: {key} is {value!r}, expected a non-negative number")
    return float(value)


def optional_text(container: dict[str, Any], key: str, cli: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OutputError(f"{cli}: {key} is {value!r}, expected a string")
    return value or None


def _last_json_line(text: str) -> Any:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def _display(invocation: Invocation) -> list[str]:
    shown = [
        f"<prompt: {len(arg)} chars>" if arg == invocation.prompt_arg else arg
        for arg in invocation.argv
    ]
    if invocation.stdin is not None:
        shown.append(f"< <prompt on stdin: {len(invocation.stdin)} chars>")
    return shown


def _task_note(task: AgentTask) -> str:
    note = task.kind.value + (f" {task.label}" if task.label else "")
    return note + (f" (resuming session {task.session_id})" if task.session_id else "")


def _stderr_excerpt(stderr: str, lines: int = 3, width: int = 300) -> str:
    tail = [line.strip() for line in stderr.splitlines() if line.strip()][-lines:]
    return " | ".join(line[:width] for line in tail)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as sink:
        sink.write(text)
