"""`crewline labels sync`, `pause`, `resume` and `status` as real subprocesses: the command
line writes the fleet's switch on the control issue, and another host's engine obeys it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.demo_goals import GOALS
from sim.core.app import RunningSim
from tests.support.cli import TOKEN_ENV, write_config
from tests.support.engine import PROJECT, configure, file_goal, runtime_for, state_of
from tests.test_cli import crewline


async def cli(config: Path, *args: str) -> tuple[int, str]:
    done = await asyncio.to_thread(crewline, *args, "--config", str(config), env=TOKEN_ENV)
    return done.returncode, (done.stdout + done.stderr).strip()


async def test_pause_and_resume_on_the_command_line_reach_another_host(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    code, said = await cli(config, "labels", "sync")
    assert code == 0 and said.endswith(
        f"{PROJECT}: 14 created, 0 updated, 0 unchanged; control issue #1"
    )
    other = configure(demo_sim, tmp_path / "host-b", worker_id="host-b")
    async with runtime_for(demo_sim, other) as (runtime, _):
        runtime.services.fleet.max_age = 0  # its poll, on every pass
        goal = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        assert await cli(config, "pause", PROJECT) == (
            0,
            f"{PROJECT} paused: no host claims new work",
        )
        assert await runtime.engine.tick() == 0
        assert await state_of(runtime, goal.iid) == "pm-ready"
        code, shown = await cli(config, "status")
        assert code == 0 and f"  {PROJECT}: paused" in shown
        assert await cli(config, "resume", PROJECT) == (0, f"{PROJECT} resumed")
        assert await runtime.engine.tick() == 1
        await runtime.engine.drain()
        audit = await runtime.storage.audit.for_target(f"pause:{PROJECT}", 10)
        assert audit == []  # the operator's entries are on the operator's host, not this one
