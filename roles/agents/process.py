"""Run one coding-agent process: allow-listed environment, its own process group, a hard
timeout, and a transcript on disk.

The agent gets a new session (so a process group of its own): on timeout or cancellation the
whole group is signalled, so the tools the agent spawned (test runners, dev servers...) die
with it. Output is streamed to the transcript as it arrives and only a bounded tail is kept in
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from roles.agents.base import AgentConfigError
from roles.sandbox import NoSandbox, Sandbox
from roles.settings import BASE_ENV_ALLOW

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# crewline's own credentials: never handed to an agent, whatever the configuration says.
_FORBIDDEN_ENV = (
    re.compile(r"CREWLINE_.*(TOKEN|SECRET)"),
    re.compile(r".*(GITLAB|DISCORD).*(TOKEN|SECRET).*"),
)

CHUNK = 64 * 1024
STDOUT_LIMIT = 16 * 1024 * 1024
STDERR_TAIL = 64 * 1024
KILL_GRACE_SECONDS = 5.0


def is_forbidden_env(name: str) -> bool:
    """True for the variables that carry crewline's GitLab/Discord tokens and secrets."""
    upper = name.upper()
    return any(pattern.fullmatch(upper) for pattern in _FORBIDDEN_ENV)


def env_allow_list(extra: Iterable[str]) -> tuple[str, ...]:
    """BASE_ENV_ALLOW plus ``extra``; refuses names that are invalid or carry crewline secrets."""
    names = list(BASE_ENV_ALLOW)
    for name in extra:
        if not _ENV_NAME.fullmatch(name):
            raise AgentConfigError(
                f"env_allow: {name!r} is not an environment variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        if is_forbidden_env(name):
            raise AgentConfigError(
                f"env_allow: {name} must never reach an agent (crewline's GitLab and Discord "
                "tokens and secrets stay with crewline); remove it from env_allow"
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


def agent_environment(
    allow: Iterable[str],
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Only the allowed variables of ``source`` (default: this process), plus ``extra``."""
    source = os.environ if source is None else source
    env = {name: source[name] for name in allow if name in source and not is_forbidden_env(name)}
    env.update(extra or {})
    return env


def new_transcript(directory: Path, kind: str) -> Path:
    """Create ``<directory>/<UTC timestamp>-<kind>.log`` (never reusing an existing name)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        path = directory / f"{stamp}-{kind}{suffix}.log"
        try:
            path.open("xb").close()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free transcript name for {stamp}-{kind} in {directory}")


@dataclass(frozen=True, slots=True)
class ProcessResult:
    exit_code: int | None  # negative: killed by that signal; None: never started
    timed_out: bool
    stdout: str  # the last STDOUT_LIMIT bytes, decoded
    stdout_truncated: bool
    stderr_tail: str
    duration_seconds: float
    transcript: Path
    start_error: str | None = None
    stopped_early: bool = False  # a stdout line made the caller stop the process group


class _Tail:
    """The last ``limit`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.dropped = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Lines:
    """Splits a byte stream into lines for a callback; a line over ``limit`` bytes is skipped.
    A callback returning True sets ``stop``: the caller wants the process ended now."""

    def __init__(self, callback: Callable[[str], bool | None], limit: int) -> None:
        self.callback = callback
        self.limit = limit
        self.pending = bytearray()
        self.skipping = False
        self.stop = asyncio.Event()

    def _line(self, data: bytes) -> None:
        if self.callback(data.decode("utf-8", errors="replace")):
            self.stop.set()

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        while (end := self.pending.find(b"\n")) >= 0:
            line = bytes(self.pending[:end])
            del self.pending[: end + 1]
            if self.skipping:
                self.skipping = False
            else:
                self._line(line)
        if len(self.pending) > self.limit:
            self.pending.clear()
            self.skipping = True

    def close(self) -> None:
        if self.pending and not self.skipping:
            self._line(bytes(self.pending))
        self.pending.clear()


async def _write(sink: BinaryIO, data: bytes) -> None:
    await asyncio.to_thread(sink.write, data)


def _copy_from_start(source: BinaryIO, sink: BinaryIO) -> None:
    source.seek(0)
    shutil.copyfileobj(source, sink, CHUNK)


async def _pump(
    stream: asyncio.StreamReader, sink: BinaryIO, tail: _Tail, lines: _Lines | None
) -> None:
    while chunk := await stream.read(CHUNK):
        await _write(sink, chunk)
        tail.add(chunk)
        if lines is not None:
            lines.feed(chunk)
    if lines is not None:
        lines.close()


async def _feed_stdin(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    # An agent that exits without reading its stdin is not an error of ours.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(data)
        await process.stdin.drain()
        process.stdin.close()
        await process.stdin.wait_closed()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The return code, as soon as the process has exited.

    ``Process.wait()`` (Python 3.11) also waits for the pipes to close, which a grandchild
    holding stdout would postpone forever; the return code is set on exit alone.
    """
    interval = 0.01
    while process.returncode is None:
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.2)
    return process.returncode


async def _exited_or_stopped(process: asyncio.subprocess.Process, stop: asyncio.Event) -> bool:
    """Wait for the process to exit or ``stop`` to be set; True when stopped first."""
    stopping = asyncio.create_task(stop.wait())
    exiting = asyncio.create_task(_exited(process))
    try:
        await asyncio.wait({stopping, exiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        exiting.cancel()
    return stop.is_set() and process.returncode is None


async def _stop_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the group, give it ``grace`` seconds, then SIGKILL whatever is left of it."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_exited(process), grace)
    _signal_group(process.pid, signal.SIGKILL)
    await _exited(process)


def _header(
    display: Sequence[str], cwd: Path, env: Mapping[str, str], notes: Mapping[str, str]
) -> bytes:
    lines = [
        "# crewline agent transcript",
        f"# started: {datetime.now(UTC).isoformat(timespec='seconds')}",
        *(f"# {key}: {value}" for key, value in notes.items()),
        f"# command: {' '.join(display)}",
        f"# cwd: {cwd}",
        f"# environment (names only): {', '.join(sorted(env))}",
        "--- stdout ---",
        "",
    ]
    return "\n".join(lines).encode()


def exit_text(code: int | None) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _describe_exit(code: int | None, timed_out: bool, seconds: float) -> str:
    return f"{exit_text(code)} after {seconds:.1f} s" + (" (timed out)" if timed_out else "")


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    transcript: Path,
    timeout_seconds: float,
    stdin: str | None = None,
    display: Sequence[str] | None = None,
    notes: Mapping[str, str] | None = None,
    on_stdout_line: Callable[[str], bool | None] | None = None,
    grace: float = KILL_GRACE_SECONDS,
    sandbox: Sandbox | None = None,
    writable: Sequence[Path] = (),
) -> ProcessResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``, appending everything to ``transcript``.

    ``display`` is the command line as written to the transcript (the prompt elided);
    ``notes`` are extra header lines. ``on_stdout_line`` sees every stdout line as it arrives,
    for CLIs whose event streams may outgrow the in-memory tail; when it returns True the
    process group is stopped at once (``stopped_early``), as on a timeout. ``sandbox`` confines
    the process (``cwd`` and ``writable`` are what it may write); None runs it unconfined.
    """
    started = time.monotonic()
    sandbox = sandbox or NoSandbox()
    header_notes = {**(notes or {}), "sandbox": sandbox.name}
    with await asyncio.to_thread(transcript.open, "ab") as sink:
        await _write(sink, _header(display or argv, cwd, env, header_notes))
        workspace_exists = await asyncio.to_thread(cwd.is_dir)
        try:
            if not workspace_exists:
                raise NotADirectoryError(f"the workspace {cwd} is not a directory")
            if sandbox.name != "none" and shutil.which(argv[0], path=env.get("PATH")) is None:
                # Inside a sandbox the miss would surface as the wrapper's own error.
                raise FileNotFoundError(argv[0])
            launch = await asyncio.to_thread(
                sandbox.wrap, argv, cwd=cwd, env=env, writable=writable
            )
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                cwd=cwd,
                env=launch.env,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            error = f"could not start {argv[0]!r}: {exc.strerror or exc}"
            if isinstance(exc, FileNotFoundError) and workspace_exists:
                error = f"could not start {argv[0]!r}: not found (is it installed and on PATH?)"
            await _write(sink, f"--- {error} ---\n".encode())
            return ProcessResult(
                None, False, "", False, "", time.monotonic() - started, transcript, error
            )
        lines = _Lines(on_stdout_line, STDOUT_LIMIT) if on_stdout_line else None
        # stderr goes to a side file and is appended after stdout, so the sections stay whole.
        stderr_path = transcript.with_name(transcript.name + ".stderr.part")
        try:
            return await _collect(
                process, sink, stderr_path, stdin, timeout_seconds, grace, lines, started
            )
        finally:
            await asyncio.to_thread(stderr_path.unlink, missing_ok=True)


async def _collect(
    process: asyncio.subprocess.Process,
    sink: BinaryIO,
    stderr_path: Path,
    stdin: str | None,
    timeout_seconds: float,
    grace: float,
    lines: _Lines | None,
    started: float,
) -> ProcessResult:
    assert process.stdout is not None and process.stderr is not None
    stdout_tail, stderr_tail = _Tail(STDOUT_LIMIT), _Tail(STDERR_TAIL)
    with await asyncio.to_thread(stderr_path.open, "w+b") as stderr_sink:
        tasks = [
            asyncio.create_task(_pump(process.stdout, sink, stdout_tail, lines)),
            asyncio.create_task(_pump(process.stderr, stderr_sink, stderr_tail, None)),
        ]
        if stdin is not None:
            tasks.append(asyncio.create_task(_feed_stdin(process, stdin.encode())))
        timed_out = stopped = False
        try:
            try:
                stopped = await asyncio.wait_for(
                    _exited_or_stopped(process, lines.stop if lines else asyncio.Event()),
                    timeout_seconds,
                )
            except TimeoutError:
                timed_out = True
                log.warning(
                    "agent pid %d timed out after %g s; stopping its group",
                    process.pid,
                    timeout_seconds,
                )
                await _stop_group(process, grace)
            if stopped:
                log.warning(
                    "agent pid %d: its output asked to stop it; stopping its group", process.pid
                )
                await _stop_group(process, grace)
            # Leftover children would hold the pipes open (and outlive the workspace).
            _signal_group(process.pid, signal.SIGKILL)
            _, pending = await asyncio.wait(tasks, timeout=grace)
        except BaseException:
            _signal_group(process.pid, signal.SIGKILL)
            for task in tasks:
                task.cancel()
            raise
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        duration = time.monotonic() - started
        await _write(sink, b"\n--- stderr ---\n")
        await asyncio.to_thread(_copy_from_start, stderr_sink, sink)
    footer = _describe_exit(process.returncode, timed_out, duration)
    if stopped:
        footer += " (stopped early: its output said it could not go on)"
    await _write(sink, f"\n--- {footer} ---\n".encode())
    return ProcessResult(
        exit_code=process.returncode,
        timed_out=timed_out,
        stdout=stdout_tail.text(),
        stdout_truncated=stdout_tail.dropped,
        stderr_tail=stderr_tail.text(),
        duration_seconds=duration,
        transcript=Path(sink.name),
        stopped_early=stopped,
    )
