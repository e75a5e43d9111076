"""The flaky-test detector against the simulator: each job's JUnit report (retried jobs
included) read from its artifacts, a test that fails in one pipeline and passes in the next
on the same commit filed as one issue with its evidence, a real failure never filed, two
hosts ending with one issue, and a stranger's look-alike issue not taken for crewline's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from forge.client import ForgeOutcomeUnknown
from forge.sink import seal_all
from roles.flaky import flaky_key, record_flakes
from roles.flaky.detect import flake_key
from roles.flaky.detector import Detector
from roles.flaky.filing import key_marker
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.faults import lose_answer
from tests.support.flaky import (
    BROKEN,
    SCRIPTED,
    STEADY,
    flaky_issues,
    hosts,
    push_scripted,
    retry_test_job,
    run_again,
)
from tests.support.sim_mr import MAINTAINER_TOKEN, client


async def test_each_job_serves_its_junit_report_retried_jobs_included(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    sha = await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        ci = host.services.gateway.ci
        (pipeline,) = [p for p in await ci.recent_pipelines(PROJECT, limit=50) if p.sha == sha]
        await asyncio.to_thread(retry_test_job, demo_sim, pipeline.id)
        jobs = sorted(await ci.jobs(PROJECT, pipeline.id), key=lambda job: job.id)
        # test_broken fails every run, so both runs of the job are red: only the reports
        # tell that test_scripted failed in the first and passed in the retry.
        assert [(job.name, job.status) for job in jobs] == [("test", "failed")] * 2
        first, second = [await ci.job_report(PROJECT, j.id, "report.xml") for j in jobs]
        status = {c.full_name: c.status for c in first}
        assert (status[SCRIPTED], status[BROKEN], status[STEADY]) == ("failed", "failed", "success")
        again = {c.full_name: c.status for c in second}
        assert (again[SCRIPTED], again[BROKEN]) == ("success", "failed")
        scripted = next(c for c in first if c.name == "test_scripted")
        assert "run 1 at 0x7f3a9c" in scripted.system_output
        # A path the job did not report is not there, as on GitLab.
        assert await ci.job_report(PROJECT, jobs[0].id, "other.xml") == []


async def test_the_window_is_bounded_and_read_page_by_page(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "")
    made = [await asyncio.to_thread(run_again, demo_sim, "scripted") for _ in range(3)]
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        ci = host.services.gateway.ci
        assert [p.id for p in await ci.recent_pipelines(PROJECT, limit=2)] == made[::-1][:2]
        every = await ci.recent_pipelines(PROJECT, limit=1000)
        assert [p.id for p in every][:3] == made[::-1] and len(every) >= 4


async def test_a_test_failing_in_one_pipeline_and_passing_in_the_next_on_one_sha_is_filed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    sha = await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    first = root(demo_sim).projects.get(PROJECT).pipelines.list(sha=sha, get_all=True)[0].id
    second = await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        detector = Detector(host.services, host.config.roles.flaky)
        report = await detector.scan_project(PROJECT)
        (issue,) = flaky_issues(demo_sim)
        assert report.filed == [f"{PROJECT}#{issue['iid']}"]
        assert issue["title"] == f"Flaky test {SCRIPTED}"
        assert set(issue["labels"]) == {"flaky-test", "flaky::detected"}  # type: ignore[arg-type]
        text = str(issue["description"])
        assert f"`{sha[:12]}`" in text and f"#{first}" in text and f"#{second}" in text
        assert "run 1 at 0x7f3a9c: the shuffle came out wrong" in text
        assert key_marker(SCRIPTED) in text
        # The real failure (red in every run of the commit) and the steady test are not filed.
        assert BROKEN not in text and len(flaky_issues(demo_sim)) == 1

        # A second pass with nothing new neither files again nor rewrites the evidence.
        again = await detector.scan_project(PROJECT)
        assert (again.filed, again.updated) == ([], [])
        assert len(flaky_issues(demo_sim)) == 1


async def test_a_failure_a_retry_turns_green_inside_one_pipeline_is_filed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    sha = await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    pipeline = root(demo_sim).projects.get(PROJECT).pipelines.list(sha=sha, get_all=True)[0].id
    await asyncio.to_thread(retry_test_job, demo_sim, pipeline)
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        report = await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
    assert len(report.filed) == 1
    assert [issue["title"] for issue in flaky_issues(demo_sim)] == [f"Flaky test {SCRIPTED}"]


async def test_a_deterministic_failure_is_never_a_candidate(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        report = await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
    assert report.filed == [] and flaky_issues(demo_sim) == []  # BROKEN failed twice: real


async def test_two_hosts_detecting_the_same_test_at_once_file_one_issue(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path) as (a, b):
        detectors = [Detector(h.services, h.config.roles.flaky) for h in (a, b)]
        reports = await asyncio.gather(*(d.scan_project(PROJECT) for d in detectors))
        opened = flaky_issues(demo_sim, state="opened")
        assert len(opened) == 1
        winner = f"{PROJECT}#{opened[0]['iid']}"
        assert sorted(r for report in reports for r in report.filed) == [winner]
        for closed in flaky_issues(demo_sim, state="closed"):
            assert f"{PROJECT}#{closed['iid']}" in [r for rep in reports for r in rep.duplicates]
        # Later passes on either host find the one issue.
        for detector in detectors:
            assert (await detector.scan_project(PROJECT)).filed == []
        assert len(flaky_issues(demo_sim, state="opened")) == 1


async def test_a_lost_create_and_a_filer_that_died_before_settling_leave_one_issue(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        detector = Detector(host.services, host.config.roles.flaky)
        lose_answer(demo_sim, "POST", r"/issues$")
        with pytest.raises(ForgeOutcomeUnknown):
            await detector.scan_project(PROJECT)  # GitLab filed it; the answer was lost
        (filed,) = flaky_issues(demo_sim)
        again = await detector.scan_project(PROJECT)
        assert again.filed == [] and len(flaky_issues(demo_sim)) == 1

        # Another host filed the same test and died before it settled: the next pass of
        # any host closes the later issue, pointing at the first, with one note.
        gateway = host.services.gateway
        first = await gateway.get_issue(PROJECT, int(filed["iid"]))  # type: ignore[call-overload]
        # (crewline's own text read back: its markers are sealed again, as a filer's would be)
        late = await gateway.create_issue(
            PROJECT, first.title, seal_all(first.description), first.labels
        )
        for _ in range(2):
            await detector.scan_project(PROJECT)
        assert [i["iid"] for i in flaky_issues(demo_sim, state="opened")] == [first.iid]
        notes = [b for b in note_bodies(demo_sim, late.iid) if "Duplicate of" in b]
        assert len(notes) == 1 and f"Duplicate of #{first.iid}" in notes[0]


async def test_a_strangers_issue_with_the_hidden_key_is_not_taken_for_crewlines(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    stranger = client(demo_sim, MAINTAINER_TOKEN).projects.get(PROJECT)
    forged = stranger.issues.create(
        {
            "title": "nothing to see",
            "description": f"closed by me {key_marker(SCRIPTED)}",
            "labels": "flaky-test,flaky::not-reproduced",
        }
    )
    forged.state_event = "close"
    forged.save()
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        report = await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
    # The stranger's key was stripped on read: crewline files its own issue, and the
    # forged "not reproduced" did not raise the bar or get reopened.
    assert len(report.filed) == 1 and report.reopened == []
    assert flake_key(SCRIPTED) in str(flaky_issues(demo_sim, state="opened")[0]["description"])


async def test_qa_stops_excusing_a_test_once_its_fix_was_validated_and_the_issue_closed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        kv = host.storage.settings
        await record_flakes(kv, PROJECT, [SCRIPTED, STEADY])
        detector = Detector(host.services, host.config.roles.flaky)
        report = await detector.scan_project(PROJECT)
        assert len(report.filed) == 2  # QA's excuse alone makes a candidate
        gateway = host.services.gateway
        issues = {i.title: i for i in await gateway.list_issues(PROJECT, labels=["flaky-test"])}
        fixed = issues[f"Flaky test {SCRIPTED}"]
        await gateway.update_issue(
            PROJECT,
            fixed.iid,
            add_labels=["flaky::validated"],
            remove_labels=["flaky::detected"],
            state_event="close",
        )
        await detector.scan_project(PROJECT)
        assert await kv.get_json(flaky_key(PROJECT)) == [STEADY]
