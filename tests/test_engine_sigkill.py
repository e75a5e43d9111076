"""kill -9 at random points, restart, no duplicates (SPEC §4), with real processes.

The in-process twin (test_engine_crash.py) stops the run right after each checkpoint. Here
a worker subprocess (tests/engine_crash_worker.py) is SIGKILLed at a random moment,
wherever it is: inside an agent turn, a git push, a GitLab call, a SQLite transaction.
The first kills are anchored on progress (a random delay after the worker announces its
k-th new checkpoint, and at the latest when it announces the next one), so they land in
the middle of the run however fast or slow the machine is; the later ones come at a
random delay after start-up and may land anywhere up to the end.
Its agent and git children are left running as orphans, as a real kill -9 leaves them.
The same worker id restarts at once on the same SQLite file and resumes; after the kills
it is left to finish. The issue must end at merge-ready (reviewed, QA passed) with one
branch, one merge request, one copy of each note, one claim per role, a succeeded
developer run and an intact audit chain.

Reproduce a failure with the seed it prints: ``CREWLINE_TEST_SEED=<seed> pytest -m slow
tests/test_engine_sigkill.py -s``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, assert_exactly_one_of_each, root
from tests.test_cli import crewline
from workflow import default_workflow

WORKER = Path(__file__).parent / "engine_crash_worker.py"
# Anchored on checkpoints: each early life gets at most two new checkpoints recorded (the one
# its kill waits for, and the next, which kills it at once), and a run to merge-ready records
# 17, so the run cannot be done before these seven kills.
EARLY_KILLS = 7
EARLY_DELAY = (0.0, 0.5)  # after the life's first new checkpoint, unless the next comes first
LATE_KILLS = 6  # then delays up to a whole run's length, landing anywhere up to the end
# Seconds after the worker is up; a clean run to merge-ready takes about 3 s here.
LATE_DELAY = (0.2, 4.0)
UP_WITHIN = 60.0  # a loaded machine may take long to import and open everything
FINISH_WITHIN = 180.0


@dataclass
class Life:
    """One worker process: what it said on stdout, and how it ended."""

    number: int
    lines: list[str] = field(default_factory=list)
    killed_after: str | None = None  # when it was killed
    exit_code: int | None = None

    @property
    def point(self) -> str:
        return self.lines[-1] if self.lines else "(before saying anything)"


def _seed() -> int:
    return int(os.environ.get("CREWLINE_TEST_SEED", "7341"))


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL a life: ``delay`` seconds after it is up (``steps`` 0), or ``delay``
    seconds after its ``steps``-th newly announced checkpoint and no later than the next."""

    delay: float
    steps: int = 0

    def __str__(self) -> str:
        return f"{self.steps} steps + {self.delay} s" if self.steps else f"{self.delay} s"


def _kills(rng: random.Random) -> list[Kill]:
    early = [Kill(round(rng.uniform(*EARLY_DELAY), 3), steps=1) for _ in range(EARLY_KILLS)]
    late = [Kill(round(rng.uniform(*LATE_DELAY), 3)) for _ in range(LATE_KILLS)]
    return early + late


async def _live(sim: RunningSim, base: Path, iid: int, number: int, kill: Kill | None) -> Life:
    """Start the worker; SIGKILL it as ``kill`` says (None: never)."""
    life = Life(number)
    log = _log(base, number)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            "--url",
            sim.base_url,
            "--base",
            str(base),
            "--worker",
            "sigkill-host",
            "--iid",
            str(iid),
            "--limit",
            str(FINISH_WITHIN),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "CREWLINE_GITLAB_TOKEN": sim.config.bot_token},
        )
        assert proc.stdout is not None
        up = asyncio.Event()
        steps = asyncio.Queue[None]()

        async def read() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode().strip()
                life.lines.append(line)
                if line == "up":
                    up.set()
                elif line.startswith("step "):
                    steps.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(up.wait(), UP_WITHIN)
            if kill is not None and await _kill_point(proc, steps, kill):
                proc.send_signal(signal.SIGKILL)
                life.killed_after = str(kill)
            life.exit_code = await asyncio.wait_for(proc.wait(), FINISH_WITHIN + UP_WITHIN)
            await reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
    return life


async def _kill_point(
    proc: asyncio.subprocess.Process, steps: asyncio.Queue[None], kill: Kill
) -> bool:
    """Wait until ``kill`` says the process is to die; False if it exited first."""
    exited = asyncio.ensure_future(proc.wait())
    try:
        for _ in range(kill.steps):
            step = asyncio.ensure_future(steps.get())
            await asyncio.wait({exited, step}, return_when=asyncio.FIRST_COMPLETED)
            step.cancel()
            if exited.done():
                return False
        waits = {exited}
        if kill.steps:
            waits.add(asyncio.ensure_future(steps.get()))  # the next checkpoint: kill at once
        await asyncio.wait(waits, timeout=kill.delay, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits - {exited}:
            wait.cancel()
        return not exited.done()
    finally:
        exited.cancel()


def _log(base: Path, number: int) -> Path:
    return base.parent / "logs" / f"worker-{number}.log"


def _file_goal(sim: RunningSim) -> int:
    wf = default_workflow()
    goal = GOALS[1]  # fails validation once: two rounds, many steps to be killed in
    issue = (
        root(sim)
        .projects.get(PROJECT)
        .issues.create(
            {
                "title": goal.title,
                "description": goal.description,
                "labels": wf.state(wf.entry).label,
            }
        )
    )
    return int(issue.iid)


def _dev_runs(db: Path, iid: int) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT attempt, status FROM runs WHERE project = ? AND iid = ? AND stage = 'dev' "
            "ORDER BY attempt",
            (PROJECT, iid),
        ).fetchall()
    return [(int(attempt), str(status)) for attempt, status in rows]


def _explain(lives: list[Life], base: Path) -> str:
    story = []
    for life in lives:
        end = (
            f"SIGKILL after {life.killed_after}"
            if life.killed_after is not None
            else f"exit {life.exit_code}"
        )
        story.append(f"life {life.number}: {end}, last said {life.point!r}")
    tail = _log(base, lives[-1].number).read_text(errors="replace")[-3000:]
    return "\n".join(story) + f"\nlast worker's log:\n{tail}"


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_sigkilled_worker_resumes_without_duplicates(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    seed = _seed()
    kills_planned = _kills(random.Random(seed))
    print(f"CREWLINE_TEST_SEED={seed} kills after 'up': {[str(k) for k in kills_planned]}")
    base = tmp_path / "worker"
    iid = _file_goal(demo_sim)
    lives: list[Life] = []
    started = time.monotonic()
    for kill in [*kills_planned, None]:
        life = await _live(demo_sim, base, iid, len(lives) + 1, kill)
        lives.append(life)
        print(f"life {life.number}: killed after {life.killed_after} at {life.point!r}")
        if life.killed_after is None:
            break  # it finished before its kill: nothing left to interrupt
    print(f"{len(lives)} lives in {time.monotonic() - started:.1f} s")
    story = _explain(lives, base)
    kills = [life for life in lives if life.killed_after is not None]
    assert len(kills) >= EARLY_KILLS, f"seed {seed}: the run ended too early\n{story}"
    assert lives[-1].exit_code == 0 and lives[-1].point == "done", f"seed {seed}\n{story}"

    labels = root(demo_sim).projects.get(PROJECT).issues.get(iid).labels
    assert "workflow::merge-ready" in labels, f"seed {seed}: {labels}\n{story}"
    assert_exactly_one_of_each(demo_sim, iid, roles=("pm", "dev", "review", "qa"))
    runs = _dev_runs(base / "crewline.sqlite3", iid)
    assert runs == [(1, "succeeded")], f"seed {seed}: dev runs {runs}\n{story}"
    verified = await asyncio.to_thread(
        crewline, "audit", "verify", "--db", str(base / "crewline.sqlite3")
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
