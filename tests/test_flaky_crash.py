"""The doctor's steps are crash-safe like the roles' runs (SPEC §3, §4, §10).

A reproduction that raises goes back to ``flaky::detected`` (attempt k of n), and the next
attempt counts the CI run the failed one had already started instead of starting it again.
A host that died holding a step's claim leaves it to the janitor of any host: re-queued once
the claim expired, failed when the step's attempts are spent."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forge.claims import Claims
from roles.engine.janitor import sweep
from roles.flaky.doctor import Doctor
from roles.flaky.janitor import flaky_gateway
from roles.flaky.proof import REPRODUCE_KEY
from roles.flaky.runs import JobRunner
from sim.core.app import RunningSim
from storage import Lease
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.flaky import flaky_issues, hosts, push_scripted, run_again


def test_jobs(sim: RunningSim) -> list[int]:
    """Every ``test`` job of the project, retried ones too."""
    project = root(sim).projects.get(PROJECT)
    return sorted(
        int(job.id)
        for pipeline in project.pipelines.list(get_all=True)
        for job in pipeline.jobs.list(get_all=True, include_retried=True)
        if job.name == "test"
    )


def labels_of(sim: RunningSim, iid: int) -> set[str]:
    return set(root(sim).projects.get(PROJECT).issues.get(iid).labels)


test_jobs.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def test_a_step_that_raises_is_requeued_and_resumed_without_a_second_ci_run(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,3")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    before = await asyncio.to_thread(test_jobs, demo_sim)
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        settings = host.config.roles.flaky.model_copy(update={"reproduce_runs": 3})
        gateway = host.services.gateway
        # patience 0: the retried job is still running when it is first looked at, so the
        # step raises TimeoutError after starting one CI run (a real job of the simulator).
        impatient = JobRunner(gateway.ci, gateway.merges, junit_path="report.xml", patience=0)
        first = await Doctor(host.services, settings, impatient).run_pass(PROJECT)
        (issue,) = flaky_issues(demo_sim, state="opened")
        iid = int(issue["iid"])  # type: ignore[call-overload]
        assert first.filed and not first.reproduced and f"{PROJECT}#{iid}" in first.skipped
        # Not stuck at flaky::reproducing: back at detected, saying which attempt stopped.
        assert labels_of(demo_sim, iid) == {"flaky-test", "flaky::detected"}
        stop = [b for b in note_bodies(demo_sim, iid) if "step stopped" in b]
        assert len(stop) == 1 and "attempt 1 of 3" in stop[0] and "TimeoutError" in stop[0]
        started = await asyncio.to_thread(test_jobs, demo_sim)
        assert len(started) == len(before) + 1  # the crashed attempt started one run
        runner = JobRunner(gateway.ci, gateway.merges, junit_path="report.xml", poll=0.2)
        second = await Doctor(host.services, settings, runner).run_pass(PROJECT)
    assert second.reproduced == [f"{PROJECT}#{iid}"]
    after = await asyncio.to_thread(test_jobs, demo_sim)
    # k = 3 runs in all: the one the first attempt started, then two more; not three more.
    assert len(after) == len(before) + 3
    (note,) = [b for b in note_bodies(demo_sim, iid) if REPRODUCE_KEY in b]
    assert f"job [{started[-1]}]" in note and note.count("job [") == 3
    assert "crewline:flaky-runs" not in note  # the finished step drops its resume marker


async def test_the_janitor_requeues_a_dead_hosts_step_then_fails_it_when_spent(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,3")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path) as (dead, janitor_host):
        settings = dead.config.roles.flaky
        doctor = Doctor(dead.services, settings)
        await doctor.detector.scan_project(PROJECT)
        (filed,) = flaky_issues(demo_sim, state="opened")
        iid = int(filed["iid"])  # type: ignore[call-overload]
        # What a host killed mid-step leaves: the running label and its claim note, never
        # renewed. Its clock is a whole TTL behind, so the claim it posts has already expired
        # by every other host's clock (the test need not wait a TTL out).
        short = Claims[Lease](
            flaky_gateway(dead.services.gateway, doctor.flaky),
            dead.storage.leases,
            worker="dead-host",
            ttl_seconds=1,
            clock=lambda: datetime.now(UTC) - timedelta(seconds=2),
        )

        async def die_holding_the_claim() -> None:
            issue = await dead.services.gateway.get_issue(PROJECT, iid)
            assert await short.claim(issue, "reproduce", "killed") is not None
            assert labels_of(demo_sim, iid) == {"flaky-test", "flaky::reproducing"}

        await die_holding_the_claim()
        report = await sweep(janitor_host.services)
        assert report.requeued == [f"{PROJECT}#{iid}"]
        assert labels_of(demo_sim, iid) == {"flaky-test", "flaky::detected"}
        notes = note_bodies(demo_sim, iid)
        assert any("attempt 1 of 3" in b and "attempt 2 of 3 next" in b for b in notes)
        # Spent: with two attempts allowed, the second dead claim fails the step.
        flaky = janitor_host.services.roles.flaky.model_copy(update={"max_attempts": 2})
        roles = janitor_host.services.roles.model_copy(update={"flaky": flaky})
        two = dataclasses.replace(janitor_host.services, roles=roles)
        # The dead host's lease in its own SQLite (1 s, by the real clock) lapses before it
        # claims again.
        await asyncio.sleep(1.1)
        await die_holding_the_claim()
        report = await sweep(two)
    assert report.failed == [f"{PROJECT}#{iid}"] and not report.requeued
    assert labels_of(demo_sim, iid) == {"flaky-test", "flaky::failed"}
    assert any("attempt 2 of 2" in b and "failed" in b for b in note_bodies(demo_sim, iid))
