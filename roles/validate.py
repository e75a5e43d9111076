"""The validation gate: run the project's commands and the plan's acceptance checks in a worktree
and report GO (all passed) or NO-GO with what failed.

Each command runs as ``/bin/sh -c COMMAND`` in its own process group, inside the sandbox
(roles/sandbox: the code under test was written by an agent), with stdin closed, an
allow-listed environment (never crewline's tokens) and a deadline; on timeout the whole group is
killed, grandchildren included. Only the last few KB of output are kept: enough to show the
failure, bounded however much a test suite prints. Commands run one after another (they would
compete for the same CPUs) and all of them run, so the agent sees every failure at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from forge import metrics
from forge.trust import defang
from roles.sandbox import NoSandbox, Sandbox
from roles.settings import BASE_ENV_ALLOW
from roles.workspace.procgroup import run_group

log = logging.getLogger(__name__)

Source = Literal["project", "acceptance"]
TAIL_BYTES = 4096
REPORT_VERSION = 1
# Python bytecode caches would otherwise land in the worktree and end up in the next commit.
_FIXED_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Check:
    """One executable check: ``command`` is a shell command line run in the worktree."""

    name: str
    command: str
    source: Source = "project"

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise ValueError(f"check {self.name!r} has an empty command")
        if not self.name.strip():
            raise ValueError(f"check for {self.command!r} needs a name")
        if self.source not in ("project", "acceptance"):
            raise ValueError(
                f"check {self.name!r}: source must be 'project' or 'acceptance', "
                f"got {self.source!r}"
            )


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    command: str
    source: Source
    exit_code: int  # negative: killed by that signal (e.g. -9 at the deadline)
    duration_seconds: float
    timed_out: bool
    output_tail: str  # the last TAIL_BYTES of stdout and stderr together, made printable
    omitted_bytes: int = 0  # output dropped before the tail

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def status(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration_seconds:.1f} s (killed)"
        if self.exit_code < 0:
            return f"killed by signal {-self.exit_code}"
        return "passed" if self.exit_code == 0 else f"exit {self.exit_code}"


_RESULTS = TypeAdapter(list[CheckResult])


@dataclass(frozen=True)
class ValidationReport:
    results: tuple[CheckResult, ...]

    @property
    def go(self) -> bool:
        """Every check passed (vacuously true when no check is configured)."""
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    def to_markdown(self) -> str:
        """A table of every command with its exit status and duration, then the output tail of
        each failure in a fenced block (for notes on the issue and the MR)."""
        if not self.results:
            return "_No validation commands are configured._"
        verdict = (
            "**GO**: every check passed."
            if self.go
            else (f"**NO-GO**: {len(self.failures)} of {len(self.results)} checks failed.")
        )
        lines = [
            verdict,
            "",
            "| Command | Source | Exit status | Duration |",
            "|---|---|---|---|",
        ]
        for result in self.results:
            mark = "✅" if result.passed else "❌"
            lines.append(
                f"| {_inline_code(result.command)} | {result.source} | {mark} {result.status()} "
                f"| {result.duration_seconds:.1f} s |"
            )
        for result in self.failures:
            lines += ["", f"{_inline_code(result.command)}: {result.status()}{_omitted(result)}"]
            lines += ["", _fenced(result.output_tail)]
        return "\n".join(lines)

    def feedback_for_agent(self) -> str:
        """What the agent needs to fix: each failing command and the end of its output."""
        if self.go:
            return f"All {len(self.results)} validation commands passed."
        parts = [
            f"Validation failed: {len(self.failures)} of {len(self.results)} commands did not "
            "pass. Fix the causes in the code (do not weaken, skip or delete the checks); "
            "crewline runs every command again afterwards.",
        ]
        for result in self.failures:
            kind = "acceptance check" if result.source == "acceptance" else "project check"
            parts.append(
                f"$ {result.command}\n({kind}: {result.status()} after "
                f"{result.duration_seconds:.1f} s{_omitted(result)})\n"
                + _fenced(result.output_tail)
            )
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict, e.g. for a run checkpoint."""
        return {"version": REPORT_VERSION, "results": [asdict(r) for r in self.results]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> ValidationReport:
        """The report :meth:`to_json` produced (the dict, or its JSON text)."""
        try:
            raw = json.loads(data) if isinstance(data, str) else data
            if not isinstance(raw, Mapping) or raw.get("version") != REPORT_VERSION:
                raise ValueError(f"expected an object with version {REPORT_VERSION}")
            results = _RESULTS.validate_python(raw.get("results"))
        except (ValueError, ValidationError) as error:
            raise ValueError(f"not a saved validation report: {error}") from None
        return cls(tuple(results))


def validation_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of validation commands: crewline's own allow-listed variables, the fixed
    ones, and ``extra`` (project settings); crewline's secrets are refused."""
    env = {key: os.environ[key] for key in BASE_ENV_ALLOW if key in os.environ}
    env.update(_FIXED_ENV)
    for key, value in (extra or {}).items():
        if key.upper().startswith("CREWLINE_") or key.upper().startswith("GIT_CONFIG"):
            raise ValueError(
                f"environment variable {key} may not be passed to validation commands; "
                "they never see crewline's own settings or tokens"
            )
        env[key] = value
    return env


async def run_validation(
    worktree: Path,
    commands: Sequence[Check],
    env: Mapping[str, str] | None = None,
    timeout_seconds: float = 600.0,
    sandbox: Sandbox | None = None,
) -> ValidationReport:
    """Run every check in ``worktree``, each with its own ``timeout_seconds``, confined by
    ``sandbox`` (None: unconfined)."""
    if not await asyncio.to_thread(worktree.is_dir):
        raise ValueError(f"worktree {worktree} is not a directory")
    if not (isinstance(timeout_seconds, int | float) and math.isfinite(timeout_seconds)) or (
        timeout_seconds <= 0
    ):
        raise ValueError(f"timeout_seconds must be a positive number, got {timeout_seconds!r}")
    full_env = validation_env(env)
    sandbox = sandbox or NoSandbox()
    results = []
    for check in commands:
        launch = await asyncio.to_thread(
            sandbox.wrap, ["/bin/sh", "-c", check.command], cwd=worktree, env=full_env
        )
        finished = await run_group(
            launch.argv,
            cwd=worktree,
            env=launch.env,
            timeout_seconds=timeout_seconds,
            merge_stderr=True,
            keep_bytes=TAIL_BYTES,
        )
        result = CheckResult(
            name=check.name,
            command=check.command,
            source=check.source,
            exit_code=finished.exit_code,
            duration_seconds=round(finished.duration_seconds, 3),
            timed_out=finished.timed_out,
            output_tail=printable(finished.stdout),
            omitted_bytes=finished.dropped_bytes,
        )
        log.info(
            "validation %s in %s (sandbox %s): %s (%.1f s)",
            check.name,
            worktree,
            sandbox.name,
            result.status(),
            result.duration_seconds,
        )
        results.append(result)
    metrics.validation(results)
    return ValidationReport(tuple(results))


def printable(output: bytes) -> str:
    """Output as text: invalid UTF-8 replaced, colours and control characters removed,
    carriage returns turned into line breaks."""
    text = output.decode("utf-8", errors="replace")
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    # Commands run code an agent wrote: what they print is quoted in crewline's notes.
    return defang(_CONTROL.sub("", text))


def _omitted(result: CheckResult) -> str:
    if not result.omitted_bytes:
        return ""
    return f"; output shortened to its last {TAIL_BYTES // 1024} KB"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(run) for run in runs), default=0)


def _inline_code(text: str) -> str:
    """``text`` as a Markdown code span usable inside a table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    ticks = "`" * (_longest_run(flat, "`") + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _fenced(text: str) -> str:
    """``text`` in a fenced block that no run of backticks inside it can close early."""
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    body = text.rstrip("\n") or "(no output)"
    return f"{fence}text\n{body}\n{fence}"
