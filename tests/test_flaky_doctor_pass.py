"""A doctor pass on two hosts at once: the test is filed once, its job is re-run by the one
host that won the claim on ``flaky::detected`` (the other skips it), it is diagnosed under a
claim too, and handed to the ordinary roles with its cause; each claim is released once the
issue moved on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from forge.claims import ClaimMarker
from roles.flaky.diagnosis import DIAGNOSIS_KEY
from roles.flaky.doctor import Doctor
from roles.flaky.proof import REPRODUCE_KEY
from roles.flaky.runs import JobRunner
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.flaky import flaky_issues, hosts, push_scripted, run_again


async def test_two_hosts_file_once_and_reproduce_once_under_a_claim(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,3")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path) as runtimes:
        doctors = []
        for host in runtimes:
            settings = host.config.roles.flaky.model_copy(update={"reproduce_runs": 3})
            gateway = host.services.gateway
            runner = JobRunner(gateway.ci, gateway.merges, junit_path="report.xml", poll=0.2)
            doctors.append(Doctor(host.services, settings, runner))
        first = await asyncio.gather(*(d.run_pass(PROJECT) for d in doctors))
        # Whichever host filed, one of them reproduced it; a later pass finds nothing to do.
        assert sum(len(p.filed) for p in first) == 1
        second = await asyncio.gather(*(d.run_pass(PROJECT) for d in doctors))
    done = [*first, *second]
    assert sum(len(p.reproduced) for p in done) == 1
    assert sum(len(p.not_reproduced) for p in done) == 0, [vars(p) for p in done]
    (issue,) = flaky_issues(demo_sim, state="opened")
    iid = int(issue["iid"])  # type: ignore[call-overload]
    ref = f"{PROJECT}#{iid}"
    # Reproduced, then diagnosed in the same pass by the demo agent (a DIAGNOSE turn over the
    # failing log and the test's source at its commit), and handed to the ordinary roles.
    assert [p.diagnosed for p in done if p.diagnosed] == [{ref: "fixing"}]
    fresh = root(demo_sim).projects.get(PROJECT).issues.get(iid)
    assert set(fresh.labels) == {
        "flaky-test",
        "flaky::fixing",
        "flaky-test::unseeded-randomness",
        "workflow::pm-ready",
    }
    assert "## Diagnosis" in fresh.description and "random.shuffle(order)" in fresh.description
    bodies = note_bodies(demo_sim, iid)
    (note,) = [b for b in bodies if REPRODUCE_KEY in b]
    assert note.count("job [") == 3 and "Reproduced: p = 0.33 (1/3 runs failed" in note
    (diagnosis,) = [b for b in bodies if DIAGNOSIS_KEY in b]
    assert "randomness without a seed" in diagnosis
    claims = [m for m in map(ClaimMarker.parse, bodies) if m is not None]
    assert [(c.role, c.ended) for c in claims] == [
        ("reproduce", "released"),
        ("diagnose", "released"),
    ]
