"""The simulator's built-in runner: runs one job's scripts in a fresh checkout of its commit.

Like GitLab's shell executor, ``before_script`` and ``script`` run in one shell (``bash``,
else ``sh``) that stops at the first failing line, each line echoed as ``$ line``;
``after_script`` runs in a shell of its own whatever happened and never changes the job's
status. The job sees only ``PATH``, the locale, a private ``HOME`` and ``TMPDIR``, the
configuration's variables and GitLab's basic ``CI_*`` variables; nothing else of the
simulator's environment. Each shell leads its own process group, killed when the job ends,
times out or is canceled, so no process outlives its job. The trace is kept in memory while
the job runs (bounded, as GitLab bounds logs) and the JUnit reports are parsed at the end.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.pipelines.ci_config import JobSpec
from sim.pipelines.junit import JunitError, parse_junit

TRACE_LIMIT = 4 * 1024 * 1024  # GitLab's default job log limit
AFTER_SCRIPT_TIMEOUT = 300.0  # GitLab's after_script limit
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE")


class Trace:
    """A job log that grows while the job runs and stops growing at ``limit`` characters."""

    def __init__(self, limit: int = TRACE_LIMIT) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self._truncated = False

    def write(self, text: str) -> None:
        if self._truncated or not text:
            return
        room = self._limit - self._size
        if len(text) > room:
            text = text[:room] + f"\nJob's log exceeded limit of {self._limit} bytes.\n"
            self._truncated = True
        self._parts.append(text)
        self._size += len(text)

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def text(self) -> str:
        return "".join(self._parts)


@dataclass(frozen=True)
class JobRun:
    """Everything one run of a job needs. ``checkout(dest)`` creates the working copy."""

    job_id: int
    spec: JobSpec
    sha: str
    ref: str
    variables: dict[str, str]  # the CI_* basics, then the pipeline's, then the job's
    timeout: float
    checkout: Callable[[Path], Awaitable[object]]


@dataclass(frozen=True)
class JobOutcome:
    status: str  # success | failed
    failure_reason: str | None = None
    test_cases: list[dict[str, Any]] | None = None  # None: the job declares no JUnit report
    suite_error: str | None = None


async def run_job(run: JobRun, build_dir: Path, trace: Trace) -> JobOutcome:
    """Run the job in ``build_dir`` (created here and removed afterwards). Cancelling the
    task kills the job's processes before the cancellation propagates."""
    source, home = build_dir / "src", build_dir / "home"
    trace.line("Running with crewline-sim runner (shell executor)")
    try:
        await asyncio.to_thread(_fresh_dirs, build_dir, home, build_dir / "tmp")
        trace.line("Getting source from Git repository")
        try:
            await run.checkout(source)
        except Exception as error:  # a vanished commit, a broken repository
            trace.line(f"ERROR: Job failed (system failure): checkout failed: {error}")
            return JobOutcome("failed", "runner_system_failure")
        trace.line(f"Checking out {run.sha[:8]} as detached HEAD (ref {run.ref})...")
        env = _environment(run, source, home, build_dir / "tmp")
        trace.line('Executing "step_script" stage of the job script')
        lines = [*run.spec.before_script, *run.spec.script]
        code = await _shell(lines, source, env, trace, run.timeout)
        if run.spec.after_script:
            trace.line("Running after_script")
            await _shell(run.spec.after_script, source, env, trace, AFTER_SCRIPT_TIMEOUT)
        status = "success" if code == 0 else "failed"
        cases, suite_error = await _junit(run.spec, status, source, trace)
        if code is None:
            trace.line(f"ERROR: Job failed: execution took longer than {run.timeout:g}s seconds")
            return JobOutcome("failed", "job_execution_timeout", cases, suite_error)
        if code != 0:
            trace.line(f"ERROR: Job failed: exit code {code}")
            return JobOutcome("failed", "script_failure", cases, suite_error)
        trace.line("Job succeeded")
        return JobOutcome("success", None, cases, suite_error)
    finally:
        await asyncio.to_thread(shutil.rmtree, build_dir, True)


def _fresh_dirs(build_dir: Path, *dirs: Path) -> None:
    shutil.rmtree(build_dir, ignore_errors=True)
    for directory in dirs:
        directory.mkdir(parents=True)


def _environment(run: JobRun, source: Path, home: Path, tmp: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in _KEEP_ENV if key in os.environ}
    # The runner's image has the simulator's own Python as ``python3``: found first, a job
    # skips a version manager's shim (pyenv's runs a dozen processes before Python starts).
    interpreter = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([interpreter, *filter(None, [env.get("PATH")])])
    env.update(run.variables)
    env.update(
        {
            "CI_PROJECT_DIR": os.fspath(source),
            "CI_BUILDS_DIR": os.fspath(source.parent),
            "HOME": os.fspath(home),
            "TMPDIR": os.fspath(tmp),
        }
    )
    return env


def _script_text(lines: list[str], shell: str) -> str:
    strict = "set -eo pipefail" if shell.endswith("bash") else "set -e"
    parts = [strict]
    for line in lines:
        parts.append(f"printf '%s\\n' {shlex.quote('$ ' + line)}")
        parts.append(line)
    return "\n".join(parts) + "\n"


async def _shell(
    lines: list[str], cwd: Path, env: dict[str, str], trace: Trace, limit: float
) -> int | None:
    """Run ``lines`` in one shell; the exit code, or None when it ran out of time."""
    shell = shutil.which("bash") or "sh"
    process = await _spawn(shell, "-c", _script_text(lines, shell), cwd=cwd, env=env)
    assert process.stdout is not None
    reader = asyncio.create_task(_pump(process.stdout, trace))
    try:
        await asyncio.wait_for(process.wait(), limit)
        code: int | None = process.returncode
    except TimeoutError:
        code = None
    finally:
        # Also on cancellation: the group goes, background children included, so the
        # pipe closes and nothing outlives the job.
        _kill_group(process.pid)
        await process.wait()
        try:
            await asyncio.wait_for(asyncio.shield(reader), 5)
        except TimeoutError:
            reader.cancel()
    return code


async def _spawn(*argv: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start ``argv`` as the leader of a new process group. A cancellation that arrives
    while asyncio is still wiring the pipes lets the start finish and kills the group:
    the script may already be running, and its children with it."""
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            process = await starting
            _kill_group(process.pid)
            await process.wait()
        raise


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _pump(stream: asyncio.StreamReader, trace: Trace) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await stream.read(65536):
        trace.write(decoder.decode(chunk))
    trace.write(decoder.decode(b"", final=True))


async def _junit(
    spec: JobSpec, status: str, source: Path, trace: Trace
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The test cases of the job's JUnit reports, when ``artifacts:when`` lets them upload."""
    if not spec.junit:
        return None, None
    wanted = spec.artifacts_when == "always" or (
        spec.artifacts_when == ("on_success" if status == "success" else "on_failure")
    )
    if not wanted:
        return None, None
    trace.line(f"Uploading artifacts for {'successful' if status == 'success' else 'failed'} job")
    return await asyncio.to_thread(_read_reports, spec.junit, source, trace)


def _read_reports(
    patterns: list[str], source: Path, trace: Trace
) -> tuple[list[dict[str, Any]] | None, str | None]:
    cases: list[dict[str, Any]] = []
    found_any = False
    root = source.resolve()
    for pattern in patterns:
        if not pattern.strip() or pattern.startswith("/") or ".." in Path(pattern).parts:
            trace.line(f"WARNING: {pattern!r}: give a path inside the project directory")
            continue
        try:
            matches = sorted(p for p in source.glob(pattern) if p.is_file())
        except ValueError as error:  # a pattern pathlib cannot glob
            trace.line(f"WARNING: {pattern}: {error}")
            continue
        matches = [p for p in matches if p.resolve().is_relative_to(root)]
        if not matches:
            trace.line(f"WARNING: {pattern}: no matching files")
            continue
        trace.line(f"{pattern}: found {len(matches)} matching artifact files and directories")
        found_any = True
        for path in matches:
            try:
                cases.extend(parse_junit(path.read_bytes()))
            except JunitError as error:
                trace.line(f"WARNING: {path.relative_to(source)}: {error}")
                return cases, str(error)
    return (cases if found_any else None), None
