"""QA does not hold a slot while it waits for a pipeline: the run is parked with its claim
(renewed while parked) and resumed from its checkpoints when it is due, when a pipeline event
names its merge request, or after a restart. End to end on the simulator: real pipelines
(held by a job that waits for a file), real SQLite, the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.app import Runtime
from forge.claims import ClaimMarker
from sim.core.app import RunningSim
from storage import RunStatus
from tests.support.engine import PROJECT, note_bodies, reach, state_of
from tests.support.engine_events import until
from tests.support.qa import QaWork, open_work, to_qa
from tests.support.review_merge import full_config, merging_runtime
from tests.support.sim_pipelines import wait_idle

HELD_CI = """held:
  script:
    - while [ ! -f {flag} ]; do sleep 0.2; done
"""


async def tick_until(
    runtime: Runtime, done: Callable[[], Awaitable[bool]], limit: float = 60.0
) -> None:
    deadline = time.monotonic() + limit
    while not await done():
        assert time.monotonic() < deadline, "not reached in time"
        await runtime.engine.tick()
        await asyncio.sleep(0.1)


def parked(runtime: Runtime, *works: QaWork) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        states = [await state_of(runtime, work.iid) for work in works]
        keys = [(PROJECT, work.iid) for work in works]
        return states == ["qa-running"] * len(works) and all(
            key in runtime.engine.parked for key in keys
        )

    return check


async def parked_work(runtime: Runtime, sim: RunningSim, name: str, flag: Path) -> QaWork:
    """Work whose pipeline is held until ``flag`` exists, taken to QA and parked there."""
    work = await open_work(runtime, sim, name, {".gitlab-ci.yml": HELD_CI.format(flag=flag)})
    await to_qa(runtime, work)
    await tick_until(runtime, parked(runtime, work))
    return work


def qa_claims(sim: RunningSim, iid: int) -> list[ClaimMarker]:
    markers = [ClaimMarker.parse(body) for body in note_bodies(sim, iid)]
    return [marker for marker in markers if marker is not None and marker.role == "qa"]


async def test_one_qa_slot_watches_two_merge_requests_at_once(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    flag = tmp_path / "pipelines-may-finish"
    config = full_config(demo_sim, tmp_path)
    config.roles.qa.concurrency = 1
    config.roles.dev.enabled = False
    # Renewed every 3 s while parked: long enough that a loaded machine never lets a live
    # claim run short (ttl / 6 = 1.5 s), short enough that a renewal is seen within seconds.
    config.schedule.claim_ttl_seconds = 9
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, desk, _):
        ci = {".gitlab-ci.yml": HELD_CI.format(flag=flag)}
        works = [await open_work(runtime, demo_sim, name, ci) for name in ("one", "two")]
        for work in works:
            await to_qa(runtime, work)
        await tick_until(runtime, parked(runtime, *works))
        assert not runtime.engine.busy  # both wait, and neither holds the one QA slot
        # Still this host's work: the janitor leaves them alone.
        assert runtime.engine.inflight_keys() == {(PROJECT, work.iid) for work in works}

        ready = runtime.services.workflow.ready_state("qa").label
        before = await runtime.services.claims.current(PROJECT, works[0].iid, ready)
        assert before is not None

        async def renewed() -> bool:  # the parked run's claim is kept live, in place
            after = await runtime.services.claims.current(PROJECT, works[0].iid, ready)
            assert after is not None and after.note.id == before.note.id
            return after.marker.expires > before.marker.expires

        await until(renewed, limit=30)

        flag.write_text("go")
        await reach(runtime, {work.iid: "merge-ready" for work in works})
        assert sorted(gate.iid for gate in desk.merges) == [work.iid for work in works]
    for work in works:
        assert len(qa_claims(demo_sim, work.iid)) == 1  # claimed once, never taken again


async def test_a_pipeline_event_resumes_the_parked_run_that_watches_it(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    flag = tmp_path / "pipelines-may-finish"
    config = full_config(demo_sim, tmp_path)
    config.roles.dev.enabled = False
    config.roles.pipeline_poll_seconds = 600  # the poll alone would look again in 10 minutes
    config.roles.pipeline_timeout_seconds = 900
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
        work = await parked_work(runtime, demo_sim, "event", flag)
        flag.write_text("go")
        wait_idle(demo_sim)
        runtime.engine.wake_parked(PROJECT, mr_iid=work.mr_iid + 100)  # another MR's event
        assert await runtime.engine.tick() == 0 and (PROJECT, work.iid) in runtime.engine.parked
        runtime.engine.wake_parked(PROJECT, mr_iid=work.mr_iid)
        await reach(runtime, {work.iid: "merge-ready"}, limit=30)


async def test_a_run_parked_when_its_host_stopped_resumes_after_the_restart(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    flag = tmp_path / "pipelines-may-finish"
    config = full_config(demo_sim, tmp_path)
    config.roles.dev.enabled = False
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
        work = await parked_work(runtime, demo_sim, "restart", flag)
    # The host stopped with the run parked: its claim and checkpoints stay.
    flag.write_text("go")
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, desk, _):
        assert await runtime.engine.resume() == 1
        await reach(runtime, {work.iid: "merge-ready"})
        assert [gate.iid for gate in desk.merges] == [work.iid]
        run = await runtime.storage.runs.latest(PROJECT, work.iid, "qa")
        assert run is not None and (run.attempt, run.status) == (1, RunStatus.SUCCEEDED)
        assert await runtime.storage.runs.find(PROJECT, work.iid, "qa", 2) is None
    assert len(qa_claims(demo_sim, work.iid)) == 1


async def test_parking_does_not_reset_the_pipeline_timeout(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """The wait's start is recorded once: a run that parks and resumes every poll still
    gives up ``pipeline_timeout_seconds`` after it began waiting, blocked with the reason."""
    flag = tmp_path / "never-written"
    config = full_config(demo_sim, tmp_path)
    config.roles.dev.enabled = False
    config.roles.pipeline_poll_seconds = 0.5
    config.roles.pipeline_timeout_seconds = 4
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, desk, _):
        work = await parked_work(runtime, demo_sim, "timeout", flag)

        async def blocked() -> bool:
            return await state_of(runtime, work.iid) == "blocked"

        await tick_until(runtime, blocked, limit=30)
        assert desk.merges == []
        assert any("No finished pipeline for" in body for body in note_bodies(demo_sim, work.iid))
    flag.write_text("go")  # lets the held job end
