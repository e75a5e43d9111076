"""kill -9 at random points, restart, no duplicates (DESIGN §4), with real processes.

The in-process twin (test_engine_crash.py) stops the run right after each checkpoint. Here
a worker subprocess (tests/engine_crash_worker.py) is SIGKILLed after a random delay,
wherever it is: inside an agent turn, a git push, a GitLab call, a SQLite transaction.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from forge.sim.app import RunningSim, running_sim
from forge.sim.core import SimConfig
from tests.engine_support import PROJECT, assert_exactly_one_of_each, root
from tests.test_cli import crewline
from workflow import default_workflow

WORKER = Path(__file__).parent / "engine_crash_worker.py"
EARLY_KILLS = 5  # short delays: the run cannot be done before these five kills
LATE_KILLS = 6  # then delays up to a whole run's length, landing anywhere up to the end
# Seconds after the worker is up; a clean run to merge-ready takes about 8 s with its pipelines.
EARLY_DELAY = (0.2, 1.2)
LATE_DELAY = (0.2, 4.0)
UP_WITHIN = 60.0  # a loaded machine may take long to import and open everything
FINISH_WITHIN = 180.0


@pytest.fixture
def demo_sim(tmp_path: Path) -> Iterator[RunningSim]:
    with running_sim(SimConfig(state_dir=tmp_path / "sim", seed="demo")) as running:
        yield running


@dataclass
class Life:
    """One worker process: what it said on stdout, and how it ended."""

    number: int
    lines: list[str] = field(default_factory=list)
    killed_after: float | None = None
    exit_code: int | None = None

    @property
    def point(self) -> str:
        return self.lines[-1] if self.lines else "(before saying anything)"


def _seed() -> int:
    return int(os.environ.get("CREWLINE_TEST_SEED", "7341"))


def _delays(rng: random.Random) -> list[float]:
    early = [round(rng.uniform(*EARLY_DELAY), 3) for _ in range(EARLY_KILLS)]
    late = [round(rng.uniform(*LATE_DELAY), 3) for _ in range(LATE_KILLS)]
    return early + late


async def _live(
    sim: RunningSim, base: Path, iid: int, number: int, kill_after: float | None
) -> Life:
    """Start the worker; SIGKILL it ``kill_after`` seconds after it is up (None: never)."""
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

        async def read() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode().strip()
                life.lines.append(line)
                if line == "up":
                    up.set()

        reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(up.wait(), UP_WITHIN)
            if kill_after is not None:
                try:
                    await asyncio.wait_for(proc.wait(), kill_after)
                except TimeoutError:
                    proc.send_signal(signal.SIGKILL)
                    life.killed_after = kill_after
            life.exit_code = await asyncio.wait_for(proc.wait(), FINISH_WITHIN + UP_WITHIN)
            await reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
    return life


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
            f"SIGKILL after {life.killed_after} s"
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
    delays = _delays(random.Random(seed))
    print(f"CREWLINE_TEST_SEED={seed} kill delays after 'up': {delays}")
    base = tmp_path / "worker"
    iid = _file_goal(demo_sim)
    lives: list[Life] = []
    started = time.monotonic()
    for delay in [*delays, None]:
        life = await _live(demo_sim, base, iid, len(lives) + 1, delay)
        lives.append(life)
        print(f"life {life.number}: killed after {life.killed_after} s at {life.point!r}")
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
