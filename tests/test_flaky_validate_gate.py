"""The validator at the merge gate, on the simulator: a flaky test's fix that the ordinary
roles brought to merge-ready is run N times on its merge request's head pipeline; N/N green
stays at merge-ready with flaky::validated, a red run sends it back to the developer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import Runtime
from forge.sink import seal
from roles.flaky.detector import Detector
from roles.flaky.doctor import Doctor
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, rate_marker
from roles.flaky.runs import JobRunner, live_note
from roles.flaky.stats import wilson
from roles.mr_link import mr_marker
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.flaky import flaky_issues, hosts, push_scripted, run_again


async def at_the_merge_gate(sim: RunningSim, host: Runtime, tmp_path: Path, fix_fails: str) -> int:
    """A detected test, measured at p = 1/4, whose fix (an MR from its own branch, the
    suite failing on the runs ``fix_fails`` names) waits at merge-ready."""
    await asyncio.to_thread(push_scripted, sim, "scripted", tmp_path / "count", "1")
    await asyncio.to_thread(run_again, sim, "scripted")
    await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
    (issue,) = flaky_issues(sim, state="opened")
    iid = int(issue["iid"])  # type: ignore[call-overload]
    gateway = host.services.gateway
    await live_note(
        gateway, PROJECT, iid, REPRODUCE_KEY, "Reproduced\n\n" + seal(rate_marker(wilson(1, 4)))
    )
    branch = f"crewline/{iid}-fix"
    await asyncio.to_thread(push_scripted, sim, branch, tmp_path / "fix-count", fix_fails)
    mr = await gateway.merges.ensure_mr(
        PROJECT,
        source_branch=branch,
        target_branch="main",
        title="Fix",
        description=f"Closes #{iid}",
    )
    await gateway.post_note(PROJECT, iid, f"MR opened\n\n{seal(mr_marker(mr.iid, branch))}")
    await gateway.update_issue(
        PROJECT,
        iid,
        add_labels=["flaky::fixing", "workflow::merge-ready"],
        remove_labels=["flaky::detected"],
    )
    return iid


def doctor_for(host: Runtime) -> Doctor:
    settings = host.config.roles.flaky.model_copy(update={"validate_ceiling": 4})
    gateway = host.services.gateway
    runner = JobRunner(gateway.ci, gateway.merges, junit_path="report.xml", poll=0.2)
    return Doctor(host.services, settings, runner)


async def test_a_fix_green_n_of_n_stays_at_merge_ready_validated(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        iid = await at_the_merge_gate(demo_sim, host, tmp_path, "")
        done = await doctor_for(host).run_pass(PROJECT)
    assert done.validated == {f"{PROJECT}#{iid}": True}
    labels = set(root(demo_sim).projects.get(PROJECT).issues.get(iid).labels)
    assert labels == {"flaky-test", "flaky::validated", "workflow::merge-ready"}
    (note,) = [b for b in note_bodies(demo_sim, iid) if VALIDATE_KEY in b]
    assert "Validated: 4/4 green" in note and note.count("job [") == 4


async def test_a_fix_left_at_fix_ready_by_a_host_that_died_is_validated(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        iid = await at_the_merge_gate(demo_sim, host, tmp_path, "")
        # A host moved it to fix-ready and died before it claimed it.
        await host.services.gateway.update_issue(
            PROJECT, iid, add_labels=["flaky::fix-ready"], remove_labels=["flaky::fixing"]
        )
        done = await doctor_for(host).run_pass(PROJECT)
    assert done.validated == {f"{PROJECT}#{iid}": True}
    labels = set(root(demo_sim).projects.get(PROJECT).issues.get(iid).labels)
    assert labels == {"flaky-test", "flaky::validated", "workflow::merge-ready"}


async def test_a_fix_with_a_red_run_goes_back_to_the_developer(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        # The fix branch's own pipeline is run 1; the validator's second run (run 3) fails.
        iid = await at_the_merge_gate(demo_sim, host, tmp_path, "3")
        done = await doctor_for(host).run_pass(PROJECT)
    assert done.validated == {f"{PROJECT}#{iid}": False}
    labels = set(root(demo_sim).projects.get(PROJECT).issues.get(iid).labels)
    assert labels == {"flaky-test", "flaky::fixing", "workflow::dev-ready"}
    (note,) = [b for b in note_bodies(demo_sim, iid) if VALIDATE_KEY in b]
    assert "Not validated: run 2 of 4 failed" in note
