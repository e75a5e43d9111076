"""Short programs run from a thread (roles/workspace/procthread.py, git's runner): the same
contract as run_group, with real processes: output and exit codes, stdin, a deadline that
kills the whole group, stragglers killed, cancellation that kills, and output bigger than a
pipe's buffer."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from roles.workspace import procthread
from roles.workspace.procgroup import Finished
from roles.workspace.procthread import run_short
from tests.support.agents import alive, gone, wait_for_file

ENV = {"PATH": os.environ["PATH"]}


async def sh(script: str, cwd: Path, deadline: float = 30, stdin: bytes | None = None) -> Finished:
    return await run_short(
        ["sh", "-c", script], cwd=cwd, env=ENV, timeout_seconds=deadline, stdin=stdin
    )


async def test_output_exit_code_and_stdin(tmp_path: Path) -> None:
    finished = await sh("cat; echo to-stderr >&2; exit 3", tmp_path, stdin=b"from stdin\n")
    assert (finished.exit_code, finished.stdout, finished.stderr) == (
        3,
        b"from stdin\n",
        b"to-stderr\n",
    )
    assert not finished.timed_out and finished.dropped_bytes == 0
    assert (await sh("pwd", tmp_path)).stdout.decode().strip() == str(tmp_path)


async def test_the_environment_is_exactly_the_one_given(tmp_path: Path) -> None:
    finished = await run_short(
        ["env"], cwd=tmp_path, env={"PATH": os.environ["PATH"], "ONLY": "this"}, timeout_seconds=10
    )
    assert sorted(finished.stdout.decode().split()) == sorted(
        [f"PATH={os.environ['PATH']}", "ONLY=this"]
    )


async def test_a_timeout_kills_the_whole_group_including_a_grandchild(tmp_path: Path) -> None:
    script = "sh -c 'sleep 60 & echo $! > grandchild.pid; wait' & echo $! > child.pid; wait"
    started = time.monotonic()
    finished = await sh(script, tmp_path, deadline=0.5)
    assert finished.timed_out and finished.exit_code == -9
    assert time.monotonic() - started < 5
    for name in ("child.pid", "grandchild.pid"):
        assert await gone(int((tmp_path / name).read_text())), name


async def test_a_straggler_holding_the_output_neither_holds_the_wait_nor_survives(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    finished = await sh("sleep 60 & echo $! > bg.pid; echo done", tmp_path)
    assert time.monotonic() - started < 5
    assert (finished.exit_code, finished.stdout, finished.timed_out) == (0, b"done\n", False)
    assert await gone(int((tmp_path / "bg.pid").read_text()))


async def test_cancelling_the_caller_kills_the_group(tmp_path: Path) -> None:
    task = asyncio.create_task(
        sh("sleep 60 & echo $! > child.pid; echo $$ > leader.pid; wait", tmp_path)
    )
    await wait_for_file(tmp_path / "child.pid")
    await wait_for_file(tmp_path / "leader.pid")
    leader, child = (int((tmp_path / f"{name}.pid").read_text()) for name in ("leader", "child"))
    assert alive(leader) and alive(child)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 5  # killed at once, not at the 30 s deadline
    assert await gone(leader) and await gone(child)


async def test_output_larger_than_a_pipe_buffer_comes_back_whole(tmp_path: Path) -> None:
    finished = await sh("head -c 3000000 /dev/zero; head -c 200000 /dev/zero >&2", tmp_path)
    assert (len(finished.stdout), len(finished.stderr), finished.exit_code) == (
        3_000_000,
        200_000,
        0,
    )


async def test_a_program_that_does_not_exist_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_short(["no-such-program-here"], cwd=tmp_path, env=ENV, timeout_seconds=5)


async def test_a_command_cancelled_while_it_waits_for_a_thread_never_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(procthread, "_pool", pool)
    try:
        busy = asyncio.create_task(sh("echo $$ > busy.pid; sleep 30", tmp_path))
        await wait_for_file(tmp_path / "busy.pid")
        queued = asyncio.create_task(sh("touch started", tmp_path))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert time.monotonic() - began < 1  # not held until the busy thread is free
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        await asyncio.to_thread(pool.shutdown)
        assert not (tmp_path / "started").exists()
    finally:
        pool.shutdown(wait=False)


async def test_a_deadline_longer_than_poll_can_wait_is_taken_as_the_longest_it_can(
    tmp_path: Path,
) -> None:
    finished = await sh("echo ok", tmp_path, deadline=float("inf"))
    assert (finished.exit_code, finished.stdout, finished.timed_out) == (0, b"ok\n", False)


def test_a_program_whose_caller_is_gone_before_it_starts_is_never_started(tmp_path: Path) -> None:
    """The thread side of a cancellation that came while the job waited: nothing runs."""
    started = procthread._Started()
    started.stop()
    finished = procthread._run(("touch", "started"), tmp_path, dict(ENV), 10, None, started)
    assert finished.exit_code == -9 and not (tmp_path / "started").exists()


def test_a_program_started_as_its_caller_is_cancelled_is_killed_at_once(tmp_path: Path) -> None:
    """Cancelled between the thread's check and the start (``began`` says so): the group is
    killed at once, not at the deadline."""

    class StoppedOnceStarted(procthread._Started):
        def began(self, pid: int) -> bool:
            super().began(pid)
            return True

    began = time.monotonic()
    finished = procthread._run(
        ("sh", "-c", "sleep 30"), tmp_path, dict(ENV), 60, None, StoppedOnceStarted()
    )
    assert finished.exit_code == -9 and time.monotonic() - began < 5
