"""The reproducer and the validator on the simulator's real jobs: the suspect job retried on
its commit k times with the runs in a note edited as they finish, p and its interval,
not-reproduced closing the issue and raising the detector's bar, and a fix proven by N
green runs out of N on the fix's head (or sent back at the first red one)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.app import Runtime
from bot.status import flaky_text
from forge.types import Issue
from roles.flaky.board import flaky_board
from roles.flaky.detector import Detector
from roles.flaky.filing import Rerun, bar_of, rerun_of
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, Proofs, RunOnce
from roles.flaky.runs import JobRunner, Run
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, root
from tests.support.faults import add_fault, lose_answer, rules
from tests.support.flaky import SCRIPTED, flaky_issues, hosts, push_scripted, run_again
from workflow import flaky_workflow


def runner_for(host: Runtime) -> JobRunner:
    gateway = host.services.gateway
    return JobRunner(gateway.ci, gateway.merges, junit_path="report.xml", poll=0.2)


def runs_of(host: Runtime, rerun: Rerun) -> RunOnce:
    """One run of ``rerun``'s job on its pipeline, as the doctor makes it."""
    runner = runner_for(host)

    async def once() -> Run:
        return await runner.run_once(PROJECT, rerun.pipeline, rerun.job, rerun.test)

    return once


async def detected(sim: RunningSim, host: Runtime) -> Issue:
    await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
    (issue,) = flaky_issues(sim, state="opened")
    return await host.services.gateway.get_issue(PROJECT, int(issue["iid"]))  # type: ignore[call-overload]


def hits(sim: RunningSim, rule: dict[str, Any]) -> int:
    return next(int(r["hits"]) for r in rules(sim) if r["id"] == rule["id"])


def labels(sim: RunningSim, iid: int) -> set[str]:
    return set(root(sim).projects.get(PROJECT).issues.get(iid).labels)


async def test_a_reproduced_flake_is_measured_then_a_real_fix_validates_n_of_n(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    # Runs 1 and 2 are the history (red, then green on the same commit); the reproducer's
    # four runs are 3..6, of which 4 fails: p = 1/4.
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,4")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        issue = await detected(demo_sim, host)
        rerun = rerun_of(issue)
        assert rerun is not None and (rerun.job, rerun.test) == ("test", SCRIPTED)
        proofs = Proofs(host.services.gateway, flaky_workflow())
        once = runs_of(host, rerun)

        listings = add_fault(
            demo_sim, method="GET", path_regex=rf"/issues/{issue.iid}/notes$", latency_ms=1
        ).json()
        verdict = await proofs.reproduce(issue, once, 4)
        # The note is found or posted once (a list, the post, a list), then edited in place.
        assert hits(demo_sim, listings) <= 2
        assert [run.passed for run in verdict.runs] == [True, False, True, True]
        assert (verdict.rate.failures, verdict.rate.runs) == (1, 4)
        assert labels(demo_sim, issue.iid) == {"flaky-test", "flaky::reproduced"}
        (note,) = [b for b in note_bodies(demo_sim, issue.iid) if REPRODUCE_KEY in b]
        assert "Reproduced: p = 0.25 (1/4 runs failed; 95% interval 0.05..0.70)" in note
        assert note.count("job [") == 4 and "FAILED" in note

        # The fix: the same suite on its own branch without the scripted failures.
        fix_sha = await asyncio.to_thread(push_scripted, demo_sim, "fix", tmp_path / "c2", "")
        project = root(demo_sim).projects.get(PROJECT)
        fix_pipeline = project.pipelines.list(sha=fix_sha, get_all=True)[0].id
        fixed = runs_of(host, Rerun(fix_pipeline, "test", SCRIPTED))

        proven = await proofs.validate(issue, fixed, floor=4, ceiling=5)
        # p's lower end is 0.05: the formula asks for 59 runs, the ceiling allows 5.
        assert proven.accepted and proven.needed == 5 and len(proven.runs) == 5
        assert labels(demo_sim, issue.iid) == {"flaky-test", "flaky::validated"}
        (note,) = [b for b in note_bodies(demo_sim, issue.iid) if VALIDATE_KEY in b]
        assert "Validated: 5/5 green" in note and note.count("passed") == 5

        # The flaky board shows it: stage, rate before and after, CI runs spent (4 + 5).
        shown = await flaky_board(host.services.gateway, [PROJECT], flaky_workflow(), "flaky-test")
        (row,) = shown.rows
        assert (row.stage, row.p_before, row.p_after, row.ci_runs) == ("validated", 0.25, 0.0, 9)
        assert shown.by_stage == {"validated": 1} and shown.by_cause == {"undiagnosed": 1}
        text = flaky_text(shown)
        assert "flaky tests: validated 1" in text and "p 0.25 -> 0.00, 9 runs" in text


async def test_a_fix_that_fails_once_goes_back_to_fixing_with_the_failing_run(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1,3")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        issue = await detected(demo_sim, host)
        rerun = rerun_of(issue)
        assert rerun is not None
        proofs = Proofs(host.services.gateway, flaky_workflow())
        once = runs_of(host, rerun)

        await proofs.reproduce(issue, once, 2)  # runs 3 (red) and 4
        # The "fix" still fails on its second run (run 6 of the counter).
        await asyncio.to_thread(push_scripted, demo_sim, "fix", tmp_path / "c2", "2")
        fix_pipeline = root(demo_sim).projects.get(PROJECT).pipelines.list(ref="fix")[0].id
        fixed = runs_of(host, Rerun(fix_pipeline, "test", SCRIPTED))

        verdict = await proofs.validate(issue, fixed, floor=4, ceiling=8)
        assert not verdict.accepted and [r.passed for r in verdict.runs] == [False]
        assert labels(demo_sim, issue.iid) == {"flaky-test", "flaky::fixing"}
        (note,) = [b for b in note_bodies(demo_sim, issue.iid) if VALIDATE_KEY in b]
        assert "Not validated: run 1 of" in note and "FAILED" in note


async def test_not_reproduced_closes_the_issue_and_raises_the_detectors_bar(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", counter, "1")
    await asyncio.to_thread(run_again, demo_sim, "scripted")
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        issue = await detected(demo_sim, host)
        rerun = rerun_of(issue)
        assert rerun is not None
        once = runs_of(host, rerun)

        verdict = await Proofs(host.services.gateway, flaky_workflow()).reproduce(issue, once, 2)
        assert verdict.rate.failures == 0
        closed = await host.services.gateway.get_issue(PROJECT, issue.iid)
        assert closed.state == "closed" and "flaky::not-reproduced" in closed.labels
        assert bar_of(closed) == 2
        # The same evidence (one commit with mixed verdicts) no longer reopens it.
        report = await Detector(host.services, host.config.roles.flaky).scan_project(PROJECT)
        assert (report.filed, report.reopened) == ([], [])
        assert flaky_issues(demo_sim, state="opened") == []


async def test_a_job_retry_whose_answer_is_lost_runs_the_job_once(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    # GitLab refuses to retry a job that was already retried ("Job is not retryable"), so a
    # blind second POST after a lost answer failed the run; it is found instead.
    await asyncio.to_thread(push_scripted, demo_sim, "scripted", tmp_path / "count", "")
    project = root(demo_sim).projects.get(PROJECT)
    pipeline = project.pipelines.list(ref="scripted")[0].id
    async with hosts(demo_sim, tmp_path, count=1) as (host,):
        lose_answer(demo_sim, "POST", r"/jobs/\d+/retry$")
        run = await runner_for(host).run_once(PROJECT, pipeline, "test", SCRIPTED)
    jobs = project.pipelines.get(pipeline).jobs.list(get_all=True, include_retried=True)
    assert run.passed and sorted(job.id for job in jobs)[-1] == run.job
    assert len(jobs) == 2  # the pushed run and one retry, not two
