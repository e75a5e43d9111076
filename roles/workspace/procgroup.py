"""Run a program in its own process group, with a deadline, and never leave a process behind.

Why a group: a command such as ``sh -c 'pytest'`` forks children (and they fork theirs); killing
only the shell would leave them running and holding the output pipe open. Each program here is
the leader of a new session, and on timeout, on cancellation and after a normal exit the whole
group gets SIGKILL, so background stragglers die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# After the group is killed its pipes close at once; a process that escaped into its own session
# may still hold them, so reading stops after this grace period.
_DRAIN_GRACE_SECONDS = 2.0
_CHUNK = 64 * 1024
_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Finished:
    """How a program ended. ``exit_code`` is negative (``-signal``) when a signal killed it."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_seconds: float
    dropped_bytes: int  # output discarded from the front to respect ``keep_bytes``


class _Sink:
    """Keeps all the bytes read, or only the last ``limit`` of them."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if self._limit is not None and len(self._data) > self._limit:
            excess = len(self._data) - self._limit
            del self._data[:excess]
            self.dropped += excess

    def value(self) -> bytes:
        return bytes(self._data)


async def _pump(stream: asyncio.StreamReader | None, sink: _Sink) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        sink.add(chunk)


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group led by ``process`` (a no-op once every member is gone)."""
    kill_group_of(process.pid)


def kill_group_of(leader: int) -> None:
    """SIGKILL the process group whose leader has the id ``leader``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGKILL)


async def _leader_exit(process: asyncio.subprocess.Process) -> None:
    """Return once the program itself has exited.

    ``Process.wait()`` alone is not enough: asyncio resolves it only when the output pipes are
    closed too, and a background child still holding them would keep it waiting. Its exit
    status, though, is recorded as soon as the program ends, so that is polled alongside.
    """
    waiting = asyncio.ensure_future(process.wait())
    try:
        while process.returncode is None:
            done, _pending = await asyncio.wait({waiting}, timeout=_POLL_SECONDS)
            if done:
                break
    finally:
        waiting.cancel()


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(data)
        await process.stdin.drain()
    process.stdin.close()


async def run_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_seconds: float,
    stdin: bytes | None = None,
    merge_stderr: bool = False,
    keep_bytes: int | None = None,
) -> Finished:
    """Run ``argv`` to completion or until ``timeout_seconds``; kill its group either way.

    ``merge_stderr`` interleaves stderr into stdout (as a terminal would show them);
    ``keep_bytes`` bounds the memory used per stream by keeping only the tail.
    """
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = _Sink(keep_bytes), _Sink(keep_bytes)
    readers = [
        asyncio.create_task(_pump(process.stdout, out)),
        asyncio.create_task(_pump(process.stderr, err)),
    ]
    if stdin is not None:
        readers.append(asyncio.create_task(_feed(process, stdin)))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(_leader_exit(process), timeout_seconds)
        except TimeoutError:
            timed_out = True
        kill_group(process)
        await _leader_exit(process)
        _done, pending = await asyncio.wait(readers, timeout=_DRAIN_GRACE_SECONDS)
        for task in pending:
            task.cancel()
    finally:
        # Cancellation (or any error) must not leave the group running.
        kill_group(process)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return Finished(
        exit_code=process.returncode if process.returncode is not None else -signal.SIGKILL,
        stdout=out.value(),
        stderr=err.value(),
        timed_out=timed_out,
        duration_seconds=time.monotonic() - started,
        dropped_bytes=out.dropped + err.dropped,
    )
