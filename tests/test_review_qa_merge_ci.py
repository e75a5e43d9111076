"""End to end through QA against the simulator's real pipelines (the project's own
``.gitlab-ci.yml`` run by the built-in runner): a red pipeline goes back to the developer
with the evidence, a flaky test is retried and recorded instead, a failure main shares
blocks as a broken target, and a moved target is rebased onto, never merged in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.demo_goals import GOALS
from forge.settings import ProjectSettings
from roles.flaky import flaky_key
from roles.flaky.detector import Detector
from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from sim.core.seed import demo_files
from tests.support.engine import (
    PROJECT,
    file_block,
    file_goal,
    note_bodies,
    reach,
    root,
)
from tests.support.review_merge import (
    GREET,
    as_maintainer,
    commit,
    full_config,
    greet_goal,
    issue_mr,
    merging_runtime,
)
from tests.support.sim_pipelines import only_pipeline, wait_idle


async def test_a_red_pipeline_goes_back_to_the_developer_then_merges(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    goal = GOALS[3]  # its first attempt's fixture is git-ignored: green locally, red in CI
    async with merging_runtime(demo_sim, full_config(demo_sim, tmp_path)) as (runtime, _, _):
        issue = await file_goal(runtime, goal.title, goal.description)
        await reach(runtime, {issue.iid: "done"})
        dev = await runtime.storage.runs.latest(PROJECT, issue.iid, "dev")
        assert dev is not None and dev.attempt == 2
        assert await runtime.storage.settings.get_json(flaky_key(PROJECT), []) == []

    failed = "tests.test_logs.ErrorCountTest.test_sample"
    sent_back = [
        body for body in note_bodies(demo_sim, issue.iid) if "Back to the developer" in body
    ]
    assert len(sent_back) == 1
    assert f"failed jobs: test; failed tests: {failed}" in sent_back[0]
    assert "Job `test`:\n\n```text\n" in sent_back[0]
    assert "FileNotFoundError" in sent_back[0] and "sample.log" in sent_back[0]
    mr = issue_mr(demo_sim, issue.iid)
    assert mr.state == "merged"
    project = root(demo_sim).projects.get(PROJECT)
    pipelines = project.pipelines.list(
        ref=mr.source_branch, get_all=True, order_by="id", sort="asc"
    )
    assert pipelines[0].status == "failed" and pipelines[-1].sha == mr.sha
    assert pipelines[-1].status == "success"
    # The failure was retried once before anyone was blamed.
    runs = pipelines[0].jobs.list(get_all=True, include_retried=True)
    assert sorted((job.name, job.status) for job in runs) == [("test", "failed")] * 2


# The job passes FLAKY_COUNTER to its tests; the clock test below misses its deadline on
# the first run that sees it (the count lives outside any checkout) and passes afterwards.
FLAKY_CI = """stages: [test]
variables:
  FLAKY_COUNTER: "{counter}"
test:
  stage: test
  script:
    - python3 ci/junit.py --output report.xml
  artifacts:
    when: always
    reports:
      junit: report.xml
"""

CLOCK_TEST = """import os
import unittest
from pathlib import Path


class TickTest(unittest.TestCase):
    def test_tick_within_deadline(self) -> None:
        counter = os.environ.get("FLAKY_COUNTER")
        if not counter:
            return
        path = Path(counter)
        runs = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(runs))
        self.assertGreater(runs, 1, "the tick missed its deadline (a slow runner)")
"""


@pytest.fixture(params=[0.0, 0.5], ids=["retry-processed-at-once", "retry-processed-later"])
def retry_sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSim]:
    """GitLab moves a pipeline on after a job retry in a background worker: for a moment
    the pipeline still says failed and the retried job waits. The simulator can lag too."""
    delay = float(request.param)
    config = SimConfig(state_dir=tmp_path / "sim", seed="demo", ci_retry_processing_delay=delay)
    with running_sim(config) as running:
        yield running


async def test_a_test_that_fails_once_and_passes_on_retry_is_recorded_as_flaky(
    retry_sim: RunningSim, tmp_path: Path
) -> None:
    demo_sim = retry_sim
    counter = tmp_path / "flaky-count"
    commit(
        demo_sim,
        "main",
        "CI: expose the flaky counter",
        {".gitlab-ci.yml": FLAKY_CI.format(counter=counter)},
    )
    goal = greet_goal(GREET, file_block("tests/test_tick.py", CLOCK_TEST))
    async with merging_runtime(demo_sim, full_config(demo_sim, tmp_path)) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", goal)
        await reach(runtime, {issue.iid: "done"})
        flaky = "tests.test_tick.TickTest.test_tick_within_deadline"
        assert await runtime.storage.settings.get_json(flaky_key(PROJECT)) == [flaky]
        learned = [
            item
            for item in await runtime.storage.learnings.for_issue(PROJECT, issue.iid)
            if item.kind == "flaky"
        ]
        assert [item.text for item in learned] == [
            f"Flaky in CI (failed, then passed on retry): {flaky}"
        ]
        dev = await runtime.storage.runs.latest(PROJECT, issue.iid, "dev")
        assert dev is not None and dev.attempt == 1

        # The flaky-test doctor's detector files what QA recorded as the test's one issue.
        mr_sha = issue_mr(demo_sim, issue.iid).sha
        [red_then_green] = root(demo_sim).projects.get(PROJECT).pipelines.list(sha=mr_sha)
        detector = Detector(runtime.services, runtime.config.roles.flaky)
        [goal_ref] = (await detector.scan_project(PROJECT)).filed
        goal = await runtime.services.gateway.get_issue(PROJECT, int(goal_ref.split("#")[1]))
        assert goal.title == f"Flaky test {flaky}"
        assert set(goal.labels) == {"flaky::detected", "flaky-test"}
        # Its evidence: the pipeline whose retried job turned it green, from the CI history.
        assert "Its verdicts on one commit include both a pass and a failure" in goal.description
        assert f"- pipelines: #{red_then_green.id}" in goal.description

    bodies = note_bodies(demo_sim, issue.iid)
    assert not any("Back to the developer" in body for body in bodies)
    noted = [body for body in bodies if "recorded as flaky" in body]
    assert len(noted) == 1 and flaky in noted[0]
    assert "failed, then passed when the failed jobs were retried" in noted[0]
    mr = issue_mr(demo_sim, issue.iid)
    assert mr.state == "merged"
    pipeline = root(demo_sim).projects.get(PROJECT).pipelines.list(sha=mr.sha, get_all=True)
    assert [p.status for p in pipeline] == ["success"]
    # One pipeline: its test job failed once, and its retry passed (main's own pipeline after
    # the merge runs the test again, so the shared counter is no measure of the MR's runs).
    runs = pipeline[0].jobs.list(get_all=True, include_retried=True)
    assert sorted((job.name, job.status) for job in runs) == [
        ("test", "failed"),
        ("test", "success"),
    ]


BROKEN_TEXT_TEST = (
    demo_files()["tests/test_text.py"]
    .decode()
    .replace('word_count("one two  three\\nfour"), 4', 'word_count("one two  three\\nfour"), 5')
)


async def test_a_failure_shared_with_the_target_branch_blocks_as_broken_target(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    assert demo_files()["tests/test_text.py"].decode() != BROKEN_TEXT_TEST
    broke = commit(
        demo_sim, "main", "Count words differently", {"tests/test_text.py": BROKEN_TEXT_TEST}
    )
    wait_idle(demo_sim)
    main_pipeline = only_pipeline(root(demo_sim).projects.get(PROJECT), broke)
    assert main_pipeline.status == "failed"
    # Locally only the goal's own check runs, so the broken test on main goes unnoticed.
    config = full_config(demo_sim, tmp_path, projects=[ProjectSettings(path=PROJECT)])
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "blocked"})
        dev = await runtime.storage.runs.latest(PROJECT, issue.iid, "dev")
        assert dev is not None and dev.attempt == 1

    outcome = next(body for body in note_bodies(demo_sim, issue.iid) if "Broken target" in body)
    assert f"`main` fails the same way in pipeline #{main_pipeline.id}" in outcome
    assert "tests.test_text.WordCountTest.test_counts_words" in outcome
    assert "not the MR's fault" in outcome
    mr = issue_mr(demo_sim, issue.iid)
    assert mr.state == "opened"


async def test_a_moved_target_is_rebased_onto_then_merged_fast_forward(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    project = as_maintainer(demo_sim)
    project.merge_method = "ff"  # a moved main now needs a rebase before the merge
    project.save()
    config = full_config(demo_sim, tmp_path)
    config.roles.qa.enabled = False
    async with merging_runtime(demo_sim, config) as (runtime, desk, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "qa-ready"})
        built = issue_mr(demo_sim, issue.iid).sha
        moved = commit(demo_sim, "main", "Docs: say hello", {"docs/hello.md": "Hello.\n"})
        config.roles.qa.enabled = True
        await reach(runtime, {issue.iid: "done"})
        qa = await runtime.storage.runs.latest(PROJECT, issue.iid, "qa")
        assert qa is not None and qa.attempt == 1
        assert f"rebase-{built[:12]}" in await runtime.storage.runs.steps(qa.id)
        assert [gate.revision for gate in desk.merges] == [issue_mr(demo_sim, issue.iid).sha]

    mr = issue_mr(demo_sim, issue.iid)
    assert mr.state == "merged" and mr.sha != built
    history = project.commits.list(ref_name="main", get_all=True)
    assert history[0].id == mr.sha  # fast-forwarded to the rebased head
    assert all(len(c.parent_ids) <= 1 for c in history)  # never a merge commit
    ids = [c.id for c in history]
    assert ids.index(mr.sha) < ids.index(moved) and built not in ids
    assert not any("refused the merge" in body for body in note_bodies(demo_sim, issue.iid))
