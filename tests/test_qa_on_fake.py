"""The QA role's decisions (``roles/qa/``) on the in-memory GitLab, driven by the real engine
with only the QA role: the test plays GitLab's runner (``state.ci``). Green on the head is
merge-ready; a pipeline on an older head does not count, a merged-results one found through
the MR does; a running pipeline parks the run without its slot until its MR's event; red is
retried once, then sent back with the failing job's excerpt (the guard redacts a secret it
quotes) or recorded as flaky when the retry passes; a failure main shares is a broken
target; manual, canceled, skipped and unrunnable pipelines block with the reason; red work
comes back at most ``max_round_trips`` times. The end-to-end runs over the simulator's
runner stay in ``tests/test_qa_pipelines.py``, ``tests/test_qa_parking.py`` and
``tests/test_review_qa_merge_ci.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roles.flaky import flaky_key
from tests.support.fake_ci_state import case
from tests.support.forge import PROJECT
from tests.support.qa_fake import QaOnFake, Work, qa_on_fake

SECRET = "glpat-Zq8vN3xR5tY7uW9aB1cD"  # a GitLab token printed by the MR's code
FAILED_TEST = "tests.test_greet.GreetTest.test_hello"


def failing_test() -> list[dict[str, object]]:
    return [case("test_hello", "tests.test_greet.GreetTest", "failed", "'hi' != 'hello'")]


def red(qa: QaOnFake, work: Work, *, sha: str | None = None, ref: str | None = None) -> int:
    """A finished pipeline whose ``test`` job fails (its log quoting a token) and whose
    ``lint`` job passes: the failing job's id."""
    ci = qa.tracker.state.ci
    pipeline = ci.add_pipeline(PROJECT, sha or work.head, ref=ref or work.branch)
    ci.add_job(pipeline, "lint", status="success", trace="lint: clean\n")
    log = f"Running tests\nusing token {SECRET}\nAssertionError: 'hi' != 'hello'\nFAILED\n"
    job = ci.add_job(pipeline, "test", status="failed", trace=log)
    ci.set_report(job, failing_test())
    return job


def newest_run(qa: QaOnFake, job_id: int) -> int:
    """The pending run a retry of ``job_id`` created."""
    ci = qa.tracker.state.ci
    name, pipeline = ci.job(job_id).name, ci.job(job_id).pipeline_id
    return max(j.id for j in ci.jobs_of(pipeline) if j.name == name)


async def parked_then(qa: QaOnFake, work: Work) -> None:
    """The run is parked, holding no slot; then its MR's pipeline event wakes it."""
    assert (PROJECT, work.iid) in qa.engine.parked and not qa.engine.busy
    assert await qa.state(work.iid) == "qa-running"
    qa.engine.wake_parked(PROJECT, mr_iid=work.mr_iid)
    await qa.run()


async def test_a_green_pipeline_on_the_head_is_merge_ready_with_the_gate(tmp_path: Path) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("green")
        ci = qa.tracker.state.ci
        pipeline = ci.add_pipeline(PROJECT, work.head, ref=work.branch)
        ci.add_job(pipeline, "test", status="success")
        await qa.run()
        assert await qa.state(work.iid) == "merge-ready"
        [gate] = qa.desk.gates
        assert (gate.gate, gate.revision, gate.iid) == ("merge-ready", work.head, work.iid)
        mr = await qa.tracker.merges.get_mr(PROJECT, work.mr_iid)
        assert not mr.draft and mr.title == "QA: green"  # QA passed: no longer a draft
        [passed] = [b for b in await qa.bodies(work.iid) if b.startswith("QA passed")]
        assert f"head `{work.head[:10]}`, pipeline #{pipeline} success" in passed


async def test_a_merged_results_pipeline_found_through_the_mr_counts_an_older_head_does_not(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("merged")
        red(qa, work)  # the first head's pipeline, red
        head = qa.tracker.merges.push(PROJECT, work.branch)  # pushed after: no branch pipeline
        ci = qa.tracker.state.ci
        main = qa.tracker.state.branches[(PROJECT, "main")]
        merged = ci.add_pipeline(
            PROJECT, ci.merge_commit(main, head), ref=f"refs/merge-requests/{work.mr_iid}/merge",
            source="merge_request_event", mr_iid=work.mr_iid,
        )  # fmt: skip
        ci.add_job(merged, "test", status="success")
        await qa.run()
        assert await qa.state(work.iid) == "merge-ready"
        assert [gate.revision for gate in qa.desk.gates] == [head]
        [passed] = [b for b in await qa.bodies(work.iid) if b.startswith("QA passed")]
        assert f"head `{head[:10]}`, pipeline #{merged} success" in passed


async def test_a_running_pipeline_parks_the_run_until_its_mrs_event(tmp_path: Path) -> None:
    async with qa_on_fake(tmp_path) as qa:
        qa.services.roles.pipeline_poll_seconds = 600  # only an event wakes it in this test
        work = await qa.work("running")
        ci = qa.tracker.state.ci
        pipeline = ci.add_pipeline(PROJECT, work.head, ref=work.branch)
        job = ci.add_job(pipeline, "test", status="running")
        await qa.run()
        assert (PROJECT, work.iid) in qa.engine.parked and not qa.engine.busy
        assert await qa.state(work.iid) == "qa-running" and qa.desk.gates == []
        ci.finish(job, "success")
        qa.engine.wake_parked(PROJECT, mr_iid=work.mr_iid + 100)  # another MR's event
        await qa.run()
        assert (PROJECT, work.iid) in qa.engine.parked
        await parked_then(qa, work)
        assert await qa.state(work.iid) == "merge-ready"
        assert (PROJECT, work.iid) not in qa.engine.parked
        run = await qa.services.storage.runs.latest(PROJECT, work.iid, "qa")
        assert run is not None and run.attempt == 1  # resumed, not started again


async def test_red_is_retried_once_then_sent_back_with_the_redacted_excerpt(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("red")
        failed = red(qa, work)
        await qa.run()
        retried = newest_run(qa, failed)
        assert retried != failed  # retried once before anyone is blamed
        qa.tracker.state.ci.finish(retried, "failed", f"again: token {SECRET}\nFAILED\n")
        qa.tracker.state.ci.set_report(retried, failing_test())
        await parked_then(qa, work)
        assert await qa.state(work.iid) == "dev-ready"
        [back] = [b for b in await qa.bodies(work.iid) if "Back to the developer" in b]
        assert "failed jobs: test; failed tests: " + FAILED_TEST in back
        assert "round trip 1 of at most 3" in back
        assert "Job `test`:\n\n```text\n" in back and "again: token" in back
        assert SECRET not in back and "[redacted:" in back
        assert "lint" not in back.split("failed jobs:")[1].split(";")[0]
        assert qa.desk.gates == []


async def test_a_job_that_passes_on_retry_is_recorded_flaky_not_sent_back(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("flaky")
        failed = red(qa, work)
        await qa.run()
        qa.tracker.state.ci.finish(newest_run(qa, failed), "success", "ok\n")
        await parked_then(qa, work)
        assert await qa.state(work.iid) == "merge-ready"
        storage = qa.services.storage
        assert await storage.settings.get_json(flaky_key(PROJECT), []) == [FAILED_TEST]
        learned = [i.text for i in await storage.learnings.for_issue(PROJECT, work.iid)]
        assert learned == [f"Flaky in CI (failed, then passed on retry): {FAILED_TEST}"]
        bodies = await qa.bodies(work.iid)
        [noted] = [body for body in bodies if "recorded as flaky" in body]
        assert FAILED_TEST in noted and not any("Back to the developer" in b for b in bodies)


async def test_a_failure_the_target_shares_blocks_as_a_broken_target(tmp_path: Path) -> None:
    async with qa_on_fake(tmp_path) as qa:
        main = qa.tracker.state.branches[(PROJECT, "main")]
        work = await qa.work("broken")
        on_main = qa.tracker.state.ci.add_pipeline(PROJECT, main, ref="main")
        job = qa.tracker.state.ci.add_job(on_main, "test", status="failed", trace="FAILED\n")
        qa.tracker.state.ci.set_report(job, failing_test())
        failed = red(qa, work)
        await qa.run()
        qa.tracker.state.ci.finish(newest_run(qa, failed), "failed", "FAILED\n")
        qa.tracker.state.ci.set_report(newest_run(qa, failed), failing_test())
        await parked_then(qa, work)
        assert await qa.state(work.iid) == "blocked"
        [outcome] = [b for b in await qa.bodies(work.iid) if "Broken target" in b]
        assert f"`main` fails the same way in pipeline #{on_main}" in outcome
        assert FAILED_TEST in outcome and "not the MR's fault" in outcome


async def test_a_blocking_manual_job_asks_a_human_then_passes_once_played(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("manual")
        ci = qa.tracker.state.ci
        pipeline = ci.add_pipeline(PROJECT, work.head, ref=work.branch)
        ci.add_job(pipeline, "test", status="success")
        approve = ci.add_job(pipeline, "approve", stage="deploy", status="manual", when="manual")
        await qa.run()
        assert await qa.state(work.iid) == "blocked"
        [outcome] = [b for b in await qa.bodies(work.iid) if "QA needs a human" in b]
        assert f"pipeline #{pipeline}" in outcome and "`approve`" in outcome
        assert f"/-/jobs/{approve}" in outcome and "allow_failure: false" in outcome
        assert qa.desk.gates == []
        ci.finish(approve, "success")  # a human plays it, then retries the issue
        await qa.tracker.transition(PROJECT, work.iid, "qa-ready")
        await qa.run()
        assert await qa.state(work.iid) == "merge-ready"
        assert [gate.revision for gate in qa.desk.gates] == [work.head]


async def test_passing_on_retry_is_recorded_flaky_even_when_a_manual_job_then_waits(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("flaky-manual")
        ci = qa.tracker.state.ci
        pipeline = ci.add_pipeline(PROJECT, work.head, ref=work.branch)
        flaky = ci.add_job(pipeline, "flaky", status="failed", trace="flaky run 1\n")
        ci.add_job(pipeline, "approve", stage="deploy", status="skipped", when="manual")
        await qa.run()
        ci.finish(newest_run(qa, flaky), "success", "flaky run 2\n")
        ci.finish(max(j.id for j in ci.jobs_of(pipeline) if j.name == "approve"), "manual")
        await parked_then(qa, work)
        assert await qa.state(work.iid) == "blocked"
        settings = qa.services.storage.settings
        assert await settings.get_json(flaky_key(PROJECT), []) == ["job:flaky"]
        bodies = await qa.bodies(work.iid)
        assert any("recorded as flaky (job:flaky)" in body for body in bodies)
        assert any("QA needs a human" in body and "`approve`" in body for body in bodies)


@pytest.mark.parametrize(
    ("status", "why"),
    [("canceled", "was canceled"), ("skipped", "was skipped")],
)
async def test_a_pipeline_that_did_not_run_gives_no_verdict(
    tmp_path: Path, status: str, why: str
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work(status)
        ci = qa.tracker.state.ci
        pipeline = ci.add_pipeline(PROJECT, work.head, ref=work.branch)
        ci.add_job(pipeline, "slow", status=status)
        await qa.run()
        assert await qa.state(work.iid) == "blocked"
        bodies = await qa.bodies(work.iid)
        [outcome] = [body for body in bodies if "QA has no CI verdict" in body]
        assert f"pipeline #{pipeline}" in outcome and why in outcome
        assert not any("Back to the developer" in body for body in bodies)


async def test_a_pipeline_gitlab_could_not_run_blocks_with_its_yaml_errors(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        work = await qa.work("yaml")
        error = "test job: chosen stage nowhere does not exist"
        qa.tracker.state.ci.add_pipeline(
            PROJECT, work.head, ref=work.branch, status="failed", yaml_errors=error
        )
        await qa.run()
        assert await qa.state(work.iid) == "blocked"
        bodies = await qa.bodies(work.iid)
        [outcome] = [body for body in bodies if "QA cannot judge" in body]
        assert error in outcome and "failed before any job ran" in outcome
        assert not any("Back to the developer" in body for body in bodies)


async def test_red_again_after_max_round_trips_is_blocked_with_every_rounds_history(
    tmp_path: Path,
) -> None:
    async with qa_on_fake(tmp_path) as qa:
        qa.services.roles.flaky_retries = 0
        qa.services.roles.qa.max_round_trips = 1
        work = await qa.work("stays-red")
        first = qa.tracker.state.ci.job(red(qa, work)).pipeline_id
        await qa.run()
        assert await qa.state(work.iid) == "dev-ready"
        # The developer (the test) pushes a second try, red again, and hands it back.
        second_head = qa.tracker.merges.push(PROJECT, work.branch)
        second = qa.tracker.state.ci.job(red(qa, work, sha=second_head)).pipeline_id
        await qa.tracker.transition(PROJECT, work.iid, "qa-ready")
        await qa.run()
        assert await qa.state(work.iid) == "blocked"
        bodies = await qa.bodies(work.iid)
        assert sum("Back to the developer" in body for body in bodies) == 1
        [blocked] = [b for b in bodies if "round trip(s) between the developer and QA" in b]
        assert "`roles.qa.max_round_trips` = 1" in blocked
        round_one, round_two = blocked.split("**Round 1**")[1].split("**Round 2**")
        assert f"Pipeline #{first} (" in round_one and f"Pipeline #{second} (" in round_two
        assert FAILED_TEST in round_two and SECRET not in blocked


async def test_no_pipeline_within_the_timeout_blocks_with_the_reason(tmp_path: Path) -> None:
    async with qa_on_fake(tmp_path) as qa:
        qa.services.roles.pipeline_poll_seconds = 0.1
        qa.services.roles.pipeline_timeout_seconds = 0.5
        work = await qa.work("no-pipeline")
        await qa.run()
        assert (PROJECT, work.iid) in qa.engine.parked  # waiting, not yet given up
        for _ in range(30):
            if await qa.state(work.iid) == "blocked":
                break
            await asyncio.sleep(0.1)
            await qa.run(1)
        assert await qa.state(work.iid) == "blocked"
        bodies = await qa.bodies(work.iid)
        assert any(f"No finished pipeline for {work.head[:10]}" in body for body in bodies)
        assert qa.desk.gates == []
