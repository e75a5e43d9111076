"""QA against GitLab's real pipeline behaviour, end to end on the simulator (real HTTP, real
git, the built-in runner): a merged-results pipeline (not on the MR's head sha) is found
through the MR and passes; a blocking manual job asks a human instead of waiting an hour or
blaming the developer, and is played through the runner; a pipeline that stays red is sent
back at most ``roles.qa.max_round_trips`` times, then blocked with the history of the real
test output. The decisions on canceled, skipped and unrunnable (``yaml_errors``) pipelines
are tested on the in-memory fake (``tests/test_qa_on_fake.py``), with the gateway's reads
of those pipelines held to the simulator by ``tests/contract/test_ci_contract.py``."""

from __future__ import annotations

import time
from pathlib import Path

from roles.flaky import flaky_key
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, reach, state_of
from tests.support.qa import FAILING_TEST, PASSING_TEST, open_work, to_qa
from tests.support.review_merge import as_maintainer, commit, full_config, merging_runtime
from tests.support.sim_pipelines import FLAKY_SCRIPT, jobs_by_name, wait_idle

MANUAL_CI = """stages: [test, deploy]
test:
  stage: test
  script:
    - python3 ci/junit.py --output report.xml
  artifacts:
    when: always
    reports:
      junit: report.xml
approve:
  stage: deploy
  when: manual
  allow_failure: false
  script: [echo approved]
"""


async def test_a_merged_results_pipeline_found_through_the_mr_passes_qa(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    project = as_maintainer(demo_sim)
    project.merge_pipelines_enabled = True
    project.save()
    config = full_config(demo_sim, tmp_path)
    config.roles.pipeline_timeout_seconds = 40
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, desk, _):
        work = await open_work(runtime, demo_sim, "merged", {"tests/test_extra.py": PASSING_TEST})
        # Pushed after the MR opened: only the merged-results pipeline tests this head.
        head = commit(demo_sim, work.branch, "Docs", {"docs/extra.md": "More.\n"})
        wait_idle(demo_sim)
        assert project.pipelines.list(sha=head, get_all=True) == []
        await to_qa(runtime, work)
        await reach(runtime, {work.iid: "merge-ready"})
        assert [gate.revision for gate in desk.merges] == [head]

    mr = project.mergerequests.get(work.mr_iid)
    pipeline = project.pipelines.get(mr.head_pipeline["id"])
    assert (pipeline.ref, pipeline.source) == (
        f"refs/merge-requests/{mr.iid}/merge",
        "merge_request_event",
    )
    assert pipeline.sha != head and head in project.commits.get(pipeline.sha).parent_ids
    passed = [body for body in note_bodies(demo_sim, work.iid) if body.startswith("QA passed")]
    assert len(passed) == 1
    assert f"head `{head[:10]}`, pipeline #{pipeline.id} success" in passed[0]


async def test_a_blocking_manual_job_asks_a_human_then_qa_passes_once_it_is_played(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path)
    config.roles.pipeline_timeout_seconds = 600  # waiting for it would outlast the test
    project = as_maintainer(demo_sim)
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, desk, _):
        files = {".gitlab-ci.yml": MANUAL_CI, "tests/test_extra.py": PASSING_TEST}
        work = await open_work(runtime, demo_sim, "manual", files)
        wait_idle(demo_sim)
        head = project.mergerequests.get(work.mr_iid).sha
        [pipeline] = project.pipelines.list(sha=head, get_all=True)
        assert pipeline.status == "manual"
        started = time.monotonic()
        await to_qa(runtime, work)
        await reach(runtime, {work.iid: "blocked"})
        assert time.monotonic() - started < 60
        [outcome] = [b for b in note_bodies(demo_sim, work.iid) if "needs a human" in b]
        approve = jobs_by_name(project.pipelines.get(pipeline.id))["approve"]
        assert f"pipeline #{pipeline.id}" in outcome and "`approve`" in outcome
        assert approve.web_url in outcome and "allow_failure: false" in outcome
        assert not any("Back to the developer" in b for b in note_bodies(demo_sim, work.iid))
        assert desk.merges == []

        # A human plays the job and retries the issue: QA passes on the same pipeline.
        project.jobs.get(approve.id, lazy=True).play()
        wait_idle(demo_sim)
        await runtime.services.gateway.transition(PROJECT, work.iid, "qa-ready")
        await reach(runtime, {work.iid: "merge-ready"})
        assert [gate.revision for gate in desk.merges] == [head]
    assert project.pipelines.get(pipeline.id).status == "success"


async def test_a_pipeline_that_stays_red_is_blocked_after_max_round_trips_with_the_history(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path)
    config.roles.dev.enabled = False  # the test is the developer: it pushes and hands back
    config.roles.flaky_retries = 0
    config.roles.qa.max_round_trips = 1
    project = as_maintainer(demo_sim)
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
        work = await open_work(
            runtime, demo_sim, "red", {"tests/test_extra.py": FAILING_TEST.format(round=1)}
        )
        await to_qa(runtime, work)
        await reach(runtime, {work.iid: "dev-ready"})
        first = project.pipelines.list(ref=work.branch, get_all=True)[0]
        [sent_back] = [b for b in note_bodies(demo_sim, work.iid) if "Back to the developer" in b]
        assert f"Pipeline #{first.id} (" in sent_back
        assert "round trip 1 of at most 1" in sent_back

        second_head = commit(
            demo_sim,
            work.branch,
            "Try again",
            {"tests/test_extra.py": FAILING_TEST.format(round=2)},
        )
        await runtime.services.gateway.transition(PROJECT, work.iid, "qa-ready")
        await reach(runtime, {work.iid: "blocked"})
        assert await state_of(runtime, work.iid) == "blocked"

    second = project.pipelines.list(sha=second_head, get_all=True)[0]
    bodies = note_bodies(demo_sim, work.iid)
    assert sum("Back to the developer" in body for body in bodies) == 1
    [blocked] = [body for body in bodies if "round trip(s) between the developer and QA" in body]
    assert "`roles.qa.max_round_trips` = 1" in blocked
    round_one, round_two = blocked.split("**Round 1**")[1].split("**Round 2**")
    assert f"Pipeline #{first.id} (" in round_one and "round 1: the sum is wrong" in round_one
    assert f"Pipeline #{second.id} (" in round_two and "round 2: the sum is wrong" in round_two
    assert "tests.test_extra.ExtraTest.test_adds" in round_two


async def test_a_job_that_passes_on_retry_is_recorded_flaky_even_when_a_manual_job_then_waits(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "flaky-count"
    ci = f"""stages: [test, deploy]
flaky:
  stage: test
  script: ['python3 ci/flaky.py "{counter}"']
approve:
  stage: deploy
  when: manual
  allow_failure: false
  script: [echo approved]
"""
    config = full_config(demo_sim, tmp_path)
    config.roles.dev.enabled = False
    async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
        files = {".gitlab-ci.yml": ci, "ci/flaky.py": FLAKY_SCRIPT}
        work = await open_work(runtime, demo_sim, "flaky-manual", files)
        await to_qa(runtime, work)
        await reach(runtime, {work.iid: "blocked"})
        assert await runtime.storage.settings.get_json(flaky_key(PROJECT), []) == ["job:flaky"]

    bodies = note_bodies(demo_sim, work.iid)
    assert any("recorded as flaky (job:flaky)" in body for body in bodies)
    assert any("QA needs a human" in body and "`approve`" in body for body in bodies)
