"""Simulator pipelines as GitLab runs them beyond push pipelines: manual jobs (optional by
default, blocking with ``allow_failure: false``, played through ``POST /jobs/:id/play``),
canceling a pipeline that waits on one, and merged-results pipelines (a project setting):
an MR's pipeline on a merge commit of its head into the target, found through the MR."""

from __future__ import annotations

import gitlab
import pytest

from sim.core.app import RunningSim
from tests.support.sim_mr import make_repo
from tests.support.sim_pipelines import jobs_by_name, only_pipeline, wait_idle

BLOCKING = """stages: [test, deploy, verify]
unit:
  stage: test
  script: ['echo unit']
approve:
  stage: deploy
  when: manual
  allow_failure: false
  script: ['echo approved']
smoke:
  stage: verify
  script: ['echo smoke']
"""

OPTIONAL = """stages: [test, deploy]
unit:
  stage: test
  script: ['echo unit']
publish:
  stage: deploy
  when: manual
  script: ['echo published']
"""

GREEN = (
    "check:\n  script:\n"
    "    - echo $CI_MERGE_REQUEST_EVENT_TYPE at $CI_COMMIT_SHA for $CI_MERGE_REQUEST_SOURCE_BRANCH_SHA\n"
)


def test_a_blocking_manual_job_holds_the_pipeline_until_it_is_played(sim: RunningSim) -> None:
    repo = make_repo(sim)
    sha = repo.feature("gated", {".gitlab-ci.yml": BLOCKING})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "manual"
    assert pipeline.detailed_status["group"] == "manual"
    jobs = jobs_by_name(pipeline)
    assert {name: job.status for name, job in jobs.items()} == {
        "unit": "success",
        "approve": "manual",
        "smoke": "created",  # held behind the blocking manual job
    }
    assert jobs["approve"].allow_failure is False and jobs["approve"].when == "manual"

    with pytest.raises(gitlab.exceptions.GitlabJobPlayError):
        repo.root.jobs.get(jobs["unit"].id, lazy=True).play()  # only a manual job plays
    repo.root.jobs.get(jobs["approve"].id, lazy=True).play()
    wait_idle(sim)
    played = repo.root.pipelines.get(pipeline.id)
    assert played.status == "success"
    assert {name: job.status for name, job in jobs_by_name(played).items()} == {
        "unit": "success",
        "approve": "success",
        "smoke": "success",
    }
    trace = repo.root.jobs.get(jobs["approve"].id).trace().decode()
    assert "approved" in trace


def test_an_optional_manual_job_leaves_the_pipeline_green(sim: RunningSim) -> None:
    repo = make_repo(sim)
    sha = repo.feature("optional", {".gitlab-ci.yml": OPTIONAL})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "success"
    jobs = jobs_by_name(pipeline)
    assert (jobs["publish"].status, jobs["publish"].allow_failure) == ("manual", True)


def test_canceling_a_pipeline_that_waits_on_a_manual_job(sim: RunningSim) -> None:
    repo = make_repo(sim)
    sha = repo.feature("gated", {".gitlab-ci.yml": BLOCKING})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "manual"
    pipeline.cancel()
    wait_idle(sim)
    canceled = repo.root.pipelines.get(pipeline.id)
    assert canceled.status == "canceled"
    assert {name: job.status for name, job in jobs_by_name(canceled).items()} == {
        "unit": "success",
        "approve": "canceled",
        "smoke": "canceled",
    }


def test_merged_results_pipelines_run_on_a_merge_commit_and_count_for_the_mr(
    sim: RunningSim,
) -> None:
    repo = make_repo(sim)
    repo.commit("main", {".gitlab-ci.yml": GREEN})
    repo.maintainer.merge_pipelines_enabled = True
    repo.maintainer.save()
    first = repo.feature("feature", {"notes.txt": "one\n"})
    mr = repo.bot.mergerequests.create(
        {"source_branch": "feature", "target_branch": "main", "title": "Feature"}
    )
    wait_idle(sim)
    # A push to the open MR's branch runs the merged-results pipeline, not a branch one.
    head = repo.commit("feature", {"notes.txt": "two\n"})
    wait_idle(sim)
    assert repo.root.pipelines.list(sha=head, get_all=True) == []
    fetched = repo.bot.mergerequests.get(mr.iid)
    assert fetched.sha == head
    pipeline = repo.root.pipelines.get(fetched.head_pipeline["id"])
    assert (pipeline.source, pipeline.ref) == (
        "merge_request_event",
        f"refs/merge-requests/{mr.iid}/merge",
    )
    assert pipeline.sha != head and pipeline.status == "success"
    merge_commit = repo.root.commits.get(pipeline.sha)
    assert merge_commit.parent_ids == [repo.branch_head("main"), head]
    listed = repo.bot.mergerequests.get(mr.iid, lazy=True).pipelines.list()
    assert listed[0].id == pipeline.id and listed[0].ref.endswith("/merge")
    # The branch pipeline from before the MR existed is still the MR's too (its commit).
    assert first in {p.sha for p in listed}
    job = pipeline.jobs.list(get_all=True)[0]
    trace = repo.root.jobs.get(job.id).trace().decode()
    assert f"merged_result at {pipeline.sha} for {head}" in trace
