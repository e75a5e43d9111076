"""Crash anywhere, restart, no duplicates (DESIGN §4).

The run is stopped dead right after each checkpoint in turn (the engine gets no chance to
transition, release or clean up its claim), then a new process-like runtime with the same
worker id and database resumes it. Every time the issue must end at review-ready with
exactly one branch, one merge request and one copy of each note.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from forge.sim.app import RunningSim, running_sim
from forge.sim.core import SimConfig
from tests.engine_support import (
    assert_exactly_one_of_each,
    configure,
    file_goal,
    reach,
    runtime_for,
)


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so nothing in crewline handles it."""


@pytest.fixture
def demo_sim(tmp_path: Path) -> Iterator[RunningSim]:
    with running_sim(SimConfig(state_dir=tmp_path / "sim", seed="demo")) as running:
        yield running


async def _steps_of_a_clean_run(sim: RunningSim, base: Path) -> list[str]:
    seen: list[str] = []

    async def record(step: str) -> None:
        seen.append(step)

    async with runtime_for(sim, configure(sim, base)) as (runtime, _):
        runtime.services.after_step = record
        issue = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
        await reach(runtime, {issue.iid: "review-ready"})
    return seen


@pytest.mark.timeout(600)
async def test_killed_after_every_checkpoint_resumes_without_duplicates(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    steps = await _steps_of_a_clean_run(demo_sim, tmp_path / "clean")
    assert {"agent-plan", "implement", "validate-1", "fix-1", "validate-2", "mr"} <= set(steps)
    for n, crash_at in enumerate(dict.fromkeys(steps)):
        base = tmp_path / f"crash-{n}"
        config = configure(demo_sim, base, worker_id=f"host-{n}")
        crashed = False

        async def crash(step: str, at: str = crash_at) -> None:
            nonlocal crashed
            if step == at and not crashed:
                crashed = True
                raise Crash(step)

        async with runtime_for(demo_sim, config) as (runtime, _):
            runtime.services.after_step = crash
            issue = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
            while not crashed:
                await runtime.engine.tick()
                await runtime.engine.drain()
        # A new process: same worker id, same database, nothing in memory.
        async with runtime_for(demo_sim, config) as (runtime, _):
            assert await runtime.engine.resume() == 1, crash_at
            await reach(runtime, {issue.iid: "review-ready"})
        assert_exactly_one_of_each(demo_sim, issue.iid)
