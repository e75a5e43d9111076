"""The flaky-test doctor against the simulator and real SQLite: the tests QA recorded as
flaky become fix goals at pm-ready (once, across hosts), and a merged fix ends the excuse.
The QA side (a real pipeline whose test fails once, then passes on retry) is in
test_review_qa_merge_ci.py, which runs the doctor on what QA recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bot.app import Runtime
from bot.scheduler import build_scheduler
from forge.sim.app import RunningSim
from roles.flaky import (
    DoctorReport,
    file_goal,
    flaky_key,
    marker,
    record_flakes,
    scan,
    settle,
    sightings_key,
)
from roles.settings import FlakyDoctorSettings
from tests.engine_support import PROJECT, configure, note_bodies, root, runtime_for, state_of

TICK = "tests.test_tick.TickTest.test_tick_within_deadline"
NET = "tests.test_net.NetTest.test_fetch"


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


async def seen(runtime: Runtime, name: str, pipeline: int, ref: str = f"{PROJECT}#1") -> None:
    await record_flakes(
        runtime.storage.settings, PROJECT, [name], pipeline=pipeline, ref=ref,
        at="2026-12-02T10:00:00+00:00",
    )  # fmt: skip


def doctor_goals(demo_sim: RunningSim, state: str = "all") -> list[dict[str, object]]:
    project = root(demo_sim).projects.get(PROJECT)
    issues = project.issues.list(labels="flaky-test", state=state, get_all=True)
    return [issue.attributes for issue in sorted(issues, key=lambda issue: issue.iid)]


async def test_recording_the_same_pipeline_twice_counts_it_once(hosts: list[Runtime]) -> None:
    host = hosts[0]
    await seen(host, TICK, 7)
    await seen(host, TICK, 7, ref=f"{PROJECT}#2")  # a resumed QA run records again
    await seen(host, TICK, 9)
    kv = host.storage.settings
    assert await kv.get_json(flaky_key(PROJECT)) == [TICK]
    entry = (await kv.get_json(sightings_key(PROJECT)))[TICK]
    assert (entry["count"], entry["pipelines"]) == (2, [7, 9])
    assert entry["refs"] == [f"{PROJECT}#1", f"{PROJECT}#2"]


async def test_each_flaky_test_becomes_one_goal_at_pm_ready(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    host = hosts[0]
    settings = host.config.roles.flaky
    assert await scan(host.services, settings) == DoctorReport()
    assert doctor_goals(demo_sim) == []  # nothing recorded: nothing filed

    await seen(host, TICK, 7)
    await seen(host, TICK, 9, ref=f"{PROJECT}#2")
    await seen(host, NET, 9, ref=f"{PROJECT}#2")
    report = await scan(host.services, settings)
    goals = doctor_goals(demo_sim)
    assert report.filed == [f"{PROJECT}#{goal['iid']}" for goal in goals]
    assert [goal["title"] for goal in goals] == [f"Fix flaky test {NET}", f"Fix flaky test {TICK}"]
    tick = goals[1]
    assert set(tick["labels"]) == {"workflow::pm-ready", "flaky-test"}  # type: ignore[arg-type]
    description = str(tick["description"])
    assert "2 times (pipelines #7, #9; QA was checking demo/app#1, demo/app#2)" in description
    assert "Do not retry, skip, quarantine or loosen the test" in description
    assert marker(TICK) in description

    again = await scan(host.services, settings)
    assert again.filed == [] and len(doctor_goals(demo_sim)) == 2  # an open goal: not twice


async def test_a_test_seen_fewer_times_than_min_sightings_waits(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    host = hosts[0]
    twice = FlakyDoctorSettings(min_sightings=2)
    await seen(host, TICK, 7)
    assert (await scan(host.services, twice)).filed == [] and doctor_goals(demo_sim) == []
    await seen(host, TICK, 8)
    assert len((await scan(host.services, twice)).filed) == 1
    disabled = FlakyDoctorSettings(enabled=False)
    await seen(host, NET, 8)
    assert (await scan(host.services, disabled)).filed == []
    assert len(doctor_goals(demo_sim)) == 1


async def test_two_hosts_filing_at_once_keep_the_lowest_iid(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    a, b = hosts
    for host in hosts:
        await seen(host, TICK, 7)
    entry = (await a.storage.settings.get_json(sightings_key(PROJECT)))[TICK]
    # Both hosts listed before either filed: both file, then each settles.
    first = await file_goal(a.services, PROJECT, TICK, entry, "flaky-test")
    second = await file_goal(b.services, PROJECT, TICK, entry, "flaky-test")
    assert await settle(b.services.gateway, PROJECT, TICK, second, "flaky-test") is False
    assert await settle(a.services.gateway, PROJECT, TICK, first, "flaky-test") is True
    assert [g["iid"] for g in doctor_goals(demo_sim, "opened")] == [first.iid]
    assert [g["iid"] for g in doctor_goals(demo_sim, "closed")] == [second.iid]
    assert f"Duplicate of #{first.iid}" in note_bodies(demo_sim, second.iid)[-1]

    # A later scan on either host finds the open goal and files nothing.
    for host in hosts:
        assert (await scan(host.services, host.config.roles.flaky)).filed == []


async def test_a_closed_goal_ends_the_excuse_and_a_new_flake_files_anew(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    host = hosts[0]
    kv, settings = host.storage.settings, host.config.roles.flaky
    await seen(host, TICK, 7)
    [filed] = (await scan(host.services, settings)).filed
    iid = int(filed.split("#")[1])
    root(demo_sim).projects.get(PROJECT).issues.update(iid, {"state_event": "close"})

    report = await scan(host.services, settings)
    assert (report.forgotten, report.filed) == ([TICK], [])
    assert await kv.get_json(flaky_key(PROJECT)) == []  # QA no longer retries it
    assert await kv.get_json(sightings_key(PROJECT)) == {}

    # It flakes again after the fix: recorded anew (after the close), a new goal is filed.
    closed_at = str(root(demo_sim).projects.get(PROJECT).issues.get(iid).updated_at)
    await record_flakes(kv, PROJECT, [TICK], pipeline=12, ref=f"{PROJECT}#5", at=closed_at)
    assert (await scan(host.services, settings)).forgotten == [TICK]  # not after: same instant
    later = "2999-01-01T00:00:00+00:00"
    await record_flakes(kv, PROJECT, [TICK], pipeline=13, ref=f"{PROJECT}#5", at=later)
    [refiled] = (await scan(host.services, settings)).filed
    assert refiled != filed
    assert await state_of(host, int(refiled.split("#")[1])) == "pm-ready"


async def test_the_scheduler_runs_the_doctor_on_its_cron(
    demo_sim: RunningSim, hosts: list[Runtime]
) -> None:
    host = hosts[0]
    scheduler = build_scheduler(host.engine, host.config.schedule, host.config.roles.flaky)
    job = scheduler.get_job("flaky")
    assert job is not None and "minute='30'" in str(job.trigger)  # flaky_cron "30 * * * *"
    await seen(host, TICK, 7)
    await job.func()
    # The doctor's pass (roles/flaky/doctor.py) files a QA-excused test for the doctor's own
    # workflow; the goal at pm-ready is no longer filed by the scheduler.
    (filed,) = doctor_goals(demo_sim)
    assert filed["title"] == f"Flaky test {TICK}"
    assert set(filed["labels"]) == {"flaky-test", "flaky::detected"}  # type: ignore[arg-type]
    off = build_scheduler(host.engine, host.config.schedule, FlakyDoctorSettings(enabled=False))
    assert off.get_job("flaky") is None
