"""Run a short program, such as git, on a thread: :func:`roles.workspace.procgroup.run_group`'s
contract (its own process group, a deadline, the whole group killed at the end, on timeout and
on cancellation) at about half the event loop's CPU.

An asyncio subprocess costs the loop about 1 ms of CPU on this kind of machine (pipes and
their transports, reader tasks, the child watcher's thread); a blocking ``Popen`` on a pool
thread costs about 0.5 ms, and a workspace runs some forty git commands per goal. The output
goes to temporary files, read once the program has ended, so a background child that keeps
the output open cannot hold the wait, and nothing needs draining. That suits commands whose
output is small; an agent's or a validation command's output, which must be bounded while it
streams, stays on ``run_group``.

The leader's exit is awaited on a pidfd without reaping it, so its id cannot be reused before
the group is killed: the kill can never reach another process. (On a kernel before 5.3,
without pidfds, the leader is reaped first, as asyncio's child watcher does.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from roles.workspace.procgroup import Finished, kill_group_of

# Commands block a thread for as long as they run (a fetch or a push: seconds), so they get a
# pool of their own rather than the loop's default executor that other work shares. A pool
# starts a thread only when every one it has is busy, and a run waits for one git command at a
# time: this bound is far above the runs a host holds at once, so no command waits behind
# another (a wait would count against the mirror lock's timeout).
_THREADS = 64
# poll() takes milliseconds as a C int: about 24 days.
_LONGEST_POLL_MS = 2**31 - 1
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="command")
        return _pool


async def run_short(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_seconds: float,
    stdin: bytes | None = None,
) -> Finished:
    """Run ``argv`` to completion or until ``timeout_seconds``; kill its group either way."""
    started = _Started()
    job = _threads().submit(_run, tuple(argv), cwd, dict(env), timeout_seconds, stdin, started)
    future = asyncio.wrap_future(job)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not job.cancel():  # it has begun: the group dies, the thread reaps it and ends
            started.stop()
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # retrieved: the caller was cancelled, not failed
        raise


class _Started:
    """The program's id, shared between its thread and a cancellation from the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stopped = False

    def began(self, pid: int) -> bool:
        """Record the leader; whether the caller was cancelled already (then kill it)."""
        with self._lock:
            self._pid = pid
            return self._stopped

    @property
    def stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._pid is not None:
                kill_group_of(self._pid)

    def ending(self) -> None:
        """The leader is about to be reaped: its id may be reused after that."""
        with self._lock:
            self._pid = None


def _run(
    argv: tuple[str, ...],
    cwd: Path,
    env: dict[str, str],
    timeout_seconds: float,
    stdin: bytes | None,
    started: _Started,
) -> Finished:
    begun = time.monotonic()
    if started.stopped:  # cancelled while it waited for this thread: nothing to start
        return Finished(-signal.SIGKILL, b"", b"", False, 0.0, 0)
    with contextlib.ExitStack() as files:
        out, err = (files.enter_context(tempfile.TemporaryFile()) for _ in range(2))
        source: IO[bytes] | int = subprocess.DEVNULL
        if stdin is not None:
            source = files.enter_context(tempfile.TemporaryFile())
            source.write(stdin)
            source.seek(0)
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=source,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        if started.began(process.pid):
            kill_group_of(process.pid)
        timed_out = False
        try:
            timed_out = not _exited_within(process, timeout_seconds)
        finally:
            # Stragglers of a finished program die too; on timeout, the program itself.
            kill_group_of(process.pid)
            started.ending()
            process.wait()
        out.seek(0)
        err.seek(0)
        return Finished(
            exit_code=process.returncode,
            stdout=out.read(),
            stderr=err.read(),
            timed_out=timed_out,
            duration_seconds=time.monotonic() - begun,
            dropped_bytes=0,
        )


def _exited_within(process: subprocess.Popen[bytes], timeout_seconds: float) -> bool:
    """Whether the leader exited within the deadline, left unreaped (a pidfd tells), so its
    id still names its group when the group is killed."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:  # a kernel before 5.3: the wait reaps it, as asyncio's would
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(min(max(0.0, timeout_seconds) * 1000, _LONGEST_POLL_MS)))
    finally:
        os.close(pidfd)
