"""Crash anywhere, restart, no duplicates (SPEC §4).

The run is stopped dead right after each checkpoint in turn (the engine gets no chance to
transition, release or clean up its claim), then a new process-like runtime with the same
worker id and database resumes it. Every time the issue must reach the same end state with
exactly one branch, one merge request and one copy of each note. The default suite crashes
the PM and developer run after a sample of its checkpoints (the first, the agent's first turn,
a validation, a fix turn and the merge request); the slow variants crash it after every one,
and the whole lifecycle to the merge.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Secrets
from bot.demo_goals import GOALS
from sim.core.app import RunningSim
from tests.support.engine import (
    assert_exactly_one_of_each,
    configure,
    file_goal,
    reach,
    runtime_for,
)


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so nothing in crewline handles it."""


def _secrets(sim: RunningSim) -> Secrets:
    return Secrets(
        gitlab_token=SecretStr(sim.config.bot_token),
        gitlab_merge_token=SecretStr(sim.config.maintainer_token),
    )


# The checkpoints the default suite crashes after: one of each kind of step.
SAMPLE = ("agent-plan", "implement", "validate-1", "fix-1", "mr")


async def _walk(
    sim: RunningSim, tmp_path: Path, *, through_qa: bool, only: tuple[str, ...] = ()
) -> None:
    end = "done" if through_qa else "review-ready"
    roles = ("pm", "dev", "review", "qa") if through_qa else ("pm", "dev")
    secrets = _secrets(sim)
    steps: list[str] = []

    async def record(step: str) -> None:
        steps.append(step)

    clean = configure(sim, tmp_path / "clean", through_qa=through_qa)
    async with runtime_for(sim, clean, secrets=secrets) as (runtime, _):
        runtime.services.after_step = record
        issue = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
        await reach(runtime, {issue.iid: end})
    assert {"agent-plan", "implement", "validate-1", "fix-1", "validate-2", "mr"} <= set(steps)
    crashes = [n for n, step in enumerate(steps) if not only or step in only]
    assert not only or len(crashes) == len(only), (steps, only)
    for n in crashes:
        config = configure(sim, tmp_path / f"crash-{n}", through_qa=through_qa, worker_id=f"h{n}")
        seen = 0

        async def crash(step: str, at: int = n) -> None:
            nonlocal seen
            seen += 1
            if seen == at + 1:
                raise Crash(step)

        async with runtime_for(sim, config, secrets=secrets) as (runtime, _):
            runtime.services.after_step = crash
            issue = await file_goal(runtime, GOALS[1].title, GOALS[1].description)
            while seen <= n:
                await runtime.engine.tick()
                await runtime.engine.drain()
        # A new process: same worker id, same database, nothing in memory.
        async with runtime_for(sim, config, secrets=secrets) as (runtime, _):
            assert await runtime.engine.resume() == 1, steps[n]
            await reach(runtime, {issue.iid: end})
        assert_exactly_one_of_each(sim, issue.iid, roles=roles, merged=through_qa)


@pytest.mark.timeout(600)
async def test_killed_after_each_kind_of_checkpoint_resumes_without_duplicates(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    await _walk(demo_sim, tmp_path, through_qa=False, only=SAMPLE)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_killed_after_every_checkpoint_resumes_without_duplicates(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    await _walk(demo_sim, tmp_path, through_qa=False)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_killed_after_every_checkpoint_through_review_qa_and_merge(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    await _walk(demo_sim, tmp_path, through_qa=True)
