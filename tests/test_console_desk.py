"""The console desk (`crewline demo --interactive`, headless hosts) and what the engine
does when a desk cannot be asked: questions one at a time, a closed standard input ends the
asking without deciding anything, and a failing desk leaves the run for a restart."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from bot.console import ConsoleDesk
from roles.notify import GateRequest
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    drive,
    file_goal,
    goal_text,
    runtime_for,
    state_of,
)


def gate(iid: int) -> GateRequest:
    return GateRequest(PROJECT, iid, f"goal {iid}", "plan-review", "1", f"the plan of #{iid}")


async def test_two_gates_at_once_are_asked_one_after_the_other(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asking, most = 0, 0
    lock = threading.Lock()

    def person(prompt: str) -> str:  # the terminal: the one seam a test cannot run for real
        nonlocal asking, most
        with lock:
            asking += 1
            most = max(most, asking)
        time.sleep(0.05)
        with lock:
            asking -= 1
        return "y" if "plan" in prompt else "no"

    monkeypatch.setattr("builtins.input", person)
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        out = io.StringIO()
        desk = ConsoleDesk.of(
            runtime.services, who="console", console=Console(file=out), interactive=True
        )
        answers = await asyncio.gather(*(desk.ask(gate(n)) for n in (1, 2, 3)))
    assert answers == [(True, "")] * 3
    assert most == 1
    assert [out.getvalue().index(f"the plan of #{n}") for n in (1, 2, 3)] == sorted(
        out.getvalue().index(f"the plan of #{n}") for n in (1, 2, 3)
    )


async def test_a_closed_standard_input_decides_nothing_and_asks_no_more(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def closed(prompt: str) -> str:
        asked.append(prompt)
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        out = io.StringIO()
        desk = ConsoleDesk.of(
            runtime.services, who="console", console=Console(file=out), interactive=True
        )
        assert await desk.ask(gate(1)) is None
        assert desk.input_closed
        await desk.request(gate(2))  # no question, no decision (there is no issue #2 here)
    assert len(asked) == 1
    assert "no answer for demo/app#1: standard input is closed" in out.getvalue()


def test_the_interactive_demo_with_nobody_at_the_terminal_stops_soon(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--interactive"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert time.monotonic() - started < 60  # not the demo's 90 s limit
    assert "standard input is closed" in result.stdout
    assert "some goals did not reach the state expected of them" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


class BrokenDesk:
    """A desk whose surface is down (say, a bug in it): every request raises."""

    def __init__(self) -> None:
        self.asked = 0

    async def request(self, gate: GateRequest) -> None:
        self.asked += 1
        raise RuntimeError("the surface is down")


class RecordingDesk:
    def __init__(self) -> None:
        self.gates: list[GateRequest] = []

    async def request(self, gate: GateRequest) -> None:
        self.gates.append(gate)


async def test_a_desk_that_fails_leaves_the_run_for_a_restart_to_finish(
    demo_sim: RunningSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        broken = BrokenDesk()
        runtime.services.desk = broken
        issue = await file_goal(runtime, "Add greet", goal_text("Add a greet helper."))

        async def asked() -> bool:
            return broken.asked == 1

        with caplog.at_level(logging.ERROR, logger="roles.engine"):
            await drive(runtime, asked)
        assert await state_of(runtime, issue.iid) == "plan-review"
        failure = [r for r in caplog.records if "run could not finish" in r.getMessage()]
        assert failure and f"issue={issue.ref} role=pm run=pm-1" in failure[0].getMessage()
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "pm")
        assert run is not None and run.status == "running"  # not finished: resumable

        working = RecordingDesk()
        runtime.services.desk = working
        assert await runtime.engine.resume() == 1

        async def finished() -> bool:
            latest = await runtime.storage.runs.latest(PROJECT, issue.iid, "pm")
            return latest is not None and latest.status != "running"

        await drive(runtime, finished)
        assert [g.iid for g in working.gates] == [issue.iid]
        assert await state_of(runtime, issue.iid) == "plan-review"
