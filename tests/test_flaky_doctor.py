"""The flaky-test doctor's record of the tests QA excused, and the scheduler running the
doctor's pass on its cron. The QA side (a real pipeline whose test fails once, then passes on
retry) is in test_review_qa_merge_ci.py; the doctor's pass in test_flaky_doctor_pass.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bot.app import Runtime
from bot.scheduler import build_scheduler
from roles.flaky import flaky_key, record_flakes
from roles.settings import FlakyDoctorSettings
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, root, runtime_for

TICK = "tests.test_tick.TickTest.test_tick_within_deadline"


@pytest.fixture
async def hosts(demo_sim: RunningSim, tmp_path: Path) -> AsyncIterator[list[Runtime]]:
    """Two crewline hosts on one GitLab, each with its own SQLite file."""
    async with AsyncExitStack() as stack:
        runtimes = []
        for name in ("host-a", "host-b"):
            config = configure(demo_sim, tmp_path / name, worker_id=name)
            runtime, _ = await stack.enter_async_context(runtime_for(demo_sim, config))
            runtimes.append(runtime)
        yield runtimes


async def seen(runtime: Runtime, name: str) -> None:
    await record_flakes(runtime.storage.settings, PROJECT, [name])


def doctor_goals(demo_sim: RunningSim, state: str = "all") -> list[dict[str, object]]:
    project = root(demo_sim).projects.get(PROJECT)
    issues = project.issues.list(labels="flaky-test", state=state, get_all=True)
    return [issue.attributes for issue in sorted(issues, key=lambda issue: issue.iid)]


async def test_recording_the_same_test_twice_excuses_it_once(hosts: list[Runtime]) -> None:
    host = hosts[0]
    await seen(host, TICK)
    await seen(host, TICK)  # a resumed QA run records again
    kv = host.storage.settings
    assert await kv.get_json(flaky_key(PROJECT)) == [TICK]


async def test_the_scheduler_runs_the_doctor_on_its_cron(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    host = hosts[0]
    scheduler = build_scheduler(
        host.engine, host.client.budget, host.config.schedule, host.config.roles.flaky
    )
    job = scheduler.get_job("flaky")
    assert job is not None and "minute='30'" in str(job.trigger)  # flaky_cron "30 * * * *"
    await seen(host, TICK)
    await job.func()
    # The doctor's pass (roles/flaky/doctor.py) files a QA-excused test for the doctor's own
    # workflow; the goal at pm-ready is no longer filed by the scheduler.
    (filed,) = doctor_goals(demo_sim)
    assert filed["title"] == f"Flaky test {TICK}"
    assert set(filed["labels"]) == {"flaky-test", "flaky::detected"}  # type: ignore[arg-type]
    off = build_scheduler(
        host.engine, host.client.budget, host.config.schedule, FlakyDoctorSettings(enabled=False)
    )
    assert off.get_job("flaky") is None
