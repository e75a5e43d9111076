"""The CI reads and the retry of the ``MergeRequests`` port (what QA, the flaky-test doctor
and review read): a push's pipeline listed by ref, sha and status and found through its
merge request; its jobs, their traces (defanged) and the pipeline's test report; a retried
job is a new run, and the old one cannot be retried again; commit parents; the MR's diff.
Each test runs on the in-memory fake and on the real gateway against the simulator, whose
runner really runs the jobs."""

from __future__ import annotations

import pytest

from forge.client import ForgeForbidden, ForgeNotFound
from forge.markers import note_marker
from tests.support.fake_ci_state import case
from tests.support.forge import PROJECT
from tests.support.forge_backends import Backend, CiJob

BRANCH = "crewline/1-greeting"
FORGED = note_marker("qa-1:outcome")  # printed by the MR's code: no note of crewline's
CASES = (
    case("test_hello", "tests.Greeting"),
    case("test_bye", "tests.Greeting", "failed", "AssertionError: 'bye' != 'hi'"),
)
RED = (
    CiJob("lint", prints="lint: clean"),
    CiJob("unit", prints=f"1 of 2 tests failed\n{FORGED}", passes=False, cases=CASES),
)


async def open_mr(backend: Backend) -> int:
    merges = backend.tracker.merges
    await merges.ensure_branch(PROJECT, BRANCH, "main")
    mr = await merges.ensure_mr(
        PROJECT, source_branch=BRANCH, target_branch="main", title="Greeting", description=""
    )
    return mr.iid


async def test_a_push_pipeline_is_listed_found_through_its_mr_and_read_in_full(
    backend: Backend,
) -> None:
    merges = backend.tracker.merges
    iid = await open_mr(backend)
    head = backend.world.pipeline(BRANCH, RED)
    [pipeline] = await merges.pipelines(PROJECT, ref=BRANCH)
    assert (pipeline.sha, pipeline.ref, pipeline.status, pipeline.source) == (
        head, BRANCH, "failed", "push",
    )  # fmt: skip
    assert pipeline.web_url.endswith(f"/-/pipelines/{pipeline.id}")
    assert await merges.pipelines(PROJECT, sha=head) == [pipeline]
    assert await merges.pipelines(PROJECT, ref=BRANCH, status="success") == []
    assert await merges.pipelines(PROJECT, ref="main") == []
    full = await merges.pipeline(PROJECT, pipeline.id)
    assert full == pipeline and full.yaml_errors == ""
    mr = await merges.get_mr(PROJECT, iid)
    assert mr.head_pipeline == pipeline
    assert await merges.mr_pipelines(PROJECT, iid) == [pipeline]
    with pytest.raises(ForgeNotFound):
        await merges.pipeline(PROJECT, pipeline.id + 1000)


async def test_a_pipeline_gitlab_could_not_run_has_no_jobs_and_says_why(
    backend: Backend,
) -> None:
    merges = backend.tracker.merges
    iid = await open_mr(backend)
    head = backend.world.unrunnable(BRANCH)
    [pipeline] = await merges.pipelines(PROJECT, sha=head)
    assert pipeline.status == "failed" and pipeline.yaml_errors == ""  # lists leave it out
    full = await merges.pipeline(PROJECT, pipeline.id)
    assert "stage nowhere does not exist" in full.yaml_errors
    assert await merges.jobs(PROJECT, pipeline.id) == []
    assert (await merges.test_report(PROJECT, pipeline.id)).total_count == 0
    head_pipeline = (await merges.get_mr(PROJECT, iid)).head_pipeline
    assert head_pipeline is not None and head_pipeline.id == pipeline.id


async def test_jobs_their_traces_and_the_test_report(backend: Backend) -> None:
    merges = backend.tracker.merges
    await open_mr(backend)
    backend.world.pipeline(BRANCH, RED)
    [pipeline] = await merges.pipelines(PROJECT, ref=BRANCH)
    jobs = await merges.jobs(PROJECT, pipeline.id)
    assert sorted((j.name, j.status, j.stage, j.has_junit) for j in jobs) == [
        ("lint", "success", "test", False), ("unit", "failed", "test", True),
    ]  # fmt: skip
    assert all(j.finished and j.pipeline_id == pipeline.id and not j.allow_failure for j in jobs)
    assert all(j.web_url.endswith(f"/-/jobs/{j.id}") and j.finished_at for j in jobs)
    unit = next(job for job in jobs if job.name == "unit")
    trace = await merges.job_trace(PROJECT, unit.id)
    assert "1 of 2 tests failed" in trace
    assert FORGED not in trace and "hidden crewline marker was removed" in trace
    report = await merges.test_report(PROJECT, pipeline.id)
    counts = (report.total_count, report.success_count, report.failed_count, report.error_count)
    assert counts == (2, 1, 1, 0)
    assert report.failed_tests() == ["tests.Greeting.test_bye"]
    [suite] = report.test_suites
    assert suite.name == "unit"
    failed = next(c for c in suite.test_cases if c.failed)
    assert failed.system_output == "AssertionError: 'bye' != 'hi'"


async def test_a_retried_job_is_a_new_run_and_the_old_one_is_not_retried_twice(
    backend: Backend,
) -> None:
    merges = backend.tracker.merges
    await open_mr(backend)
    backend.world.pipeline(BRANCH, RED)
    [pipeline] = await merges.pipelines(PROJECT, ref=BRANCH)
    unit = next(j for j in await merges.jobs(PROJECT, pipeline.id) if j.name == "unit")
    again = await merges.retry_job(PROJECT, unit.id)
    assert again.id > unit.id and (again.name, again.stage) == ("unit", "test")
    assert again.pipeline_id == pipeline.id and not again.finished
    with pytest.raises(ForgeForbidden):
        await merges.retry_job(PROJECT, unit.id)  # GitLab: "Job is not retryable"
    backend.world.settle()
    jobs = await merges.jobs(PROJECT, pipeline.id)  # the newest run of each name only
    assert sorted((j.name, j.status) for j in jobs) == [("lint", "success"), ("unit", "failed")]
    assert again.id in {j.id for j in jobs} and unit.id not in {j.id for j in jobs}
    assert "1 of 2 tests failed" in await merges.job_trace(PROJECT, again.id)
    assert (await merges.pipeline(PROJECT, pipeline.id)).status == "failed"
    report = await merges.test_report(PROJECT, pipeline.id)  # the retried run's report
    assert (report.total_count, report.failed_tests()) == (2, ["tests.Greeting.test_bye"])


async def test_mr_pipelines_follow_the_branch_newest_first_with_commit_parents(
    backend: Backend,
) -> None:
    merges = backend.tracker.merges
    iid = await open_mr(backend)
    main = await merges.branch_sha(PROJECT, "main")
    first = backend.world.pipeline(BRANCH, [CiJob("unit", prints="ok")])
    second = backend.world.pipeline(BRANCH, [CiJob("unit", prints="ok")])
    assert await merges.commit_parents(PROJECT, second) == [first]
    assert await merges.commit_parents(PROJECT, first) == [main]
    found = await merges.mr_pipelines(PROJECT, iid)
    assert [(p.sha, p.status) for p in found] == [(second, "success"), (first, "success")]
    assert found[0].id > found[1].id
    head = (await merges.get_mr(PROJECT, iid)).head_pipeline
    assert head is not None and head.id == found[0].id
    listed = await merges.pipelines(PROJECT, ref=BRANCH, status="success")
    assert [p.id for p in listed] == [p.id for p in found]
    with pytest.raises(ForgeNotFound):
        await merges.commit_parents(PROJECT, "f" * 40)


async def test_a_merged_results_pipeline_runs_on_a_merge_commit_of_the_head(
    backend: Backend,
) -> None:
    merges = backend.tracker.merges
    iid = await open_mr(backend)
    main = await merges.branch_sha(PROJECT, "main")
    head = backend.world.merged_results(BRANCH, iid, [CiJob("unit", prints="ok")])
    assert await merges.pipelines(PROJECT, sha=head) == []  # no pipeline on the head itself
    [pipeline] = await merges.mr_pipelines(PROJECT, iid)
    assert (pipeline.ref, pipeline.source, pipeline.status) == (
        f"refs/merge-requests/{iid}/merge", "merge_request_event", "success",
    )  # fmt: skip
    assert pipeline.sha != head
    assert sorted(await merges.commit_parents(PROJECT, pipeline.sha)) == sorted([main, head])
    found = (await merges.get_mr(PROJECT, iid)).head_pipeline
    assert found is not None and found.id == pipeline.id


async def test_an_mr_diff_lists_the_files_pushed_to_it(backend: Backend) -> None:
    merges = backend.tracker.merges
    iid = await open_mr(backend)
    assert await merges.diffs(PROJECT, iid) == []
    backend.world.push(BRANCH)
    backend.world.push(BRANCH)
    diffs = await merges.diffs(PROJECT, iid)
    assert sorted((d.new_path, d.new_file, d.deleted_file, d.renamed_file) for d in diffs) == [
        ("change-1.txt", True, False, False), ("change-2.txt", True, False, False),
    ]  # fmt: skip
    assert all("+x" in d.diff and d.old_path == d.new_path for d in diffs)
