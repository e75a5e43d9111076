"""Simulator pipelines and merge requests: ``head_pipeline`` follows the newest pipeline of
the MR's head, the MR's pipelines list, merge checks that need a green pipeline, and a
merge request pipeline for a head that never got one from a push."""

from __future__ import annotations

from sim.core.app import RunningSim
from sim.core.base import project_by_ref
from sim.git.repository import git_repos_for
from tests.support.sim_mr import make_repo, record_events
from tests.support.sim_pipelines import only_pipeline, wait_idle

GREEN = "check:\n  script: ['echo green']\n"
RED = "check:\n  script: ['echo red', 'exit 4']\n"


def test_head_pipeline_follows_the_newest_pipeline_of_the_head(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature", {"notes.txt": "no CI yet\n"})
    mr = repo.bot.mergerequests.create(
        {"source_branch": "feature", "target_branch": "main", "title": "Feature"}
    )
    wait_idle(sim)
    assert repo.bot.mergerequests.get(mr.iid).head_pipeline is None

    green = repo.commit("feature", {".gitlab-ci.yml": GREEN})
    wait_idle(sim)
    first = only_pipeline(repo.root, green)
    fetched = repo.bot.mergerequests.get(mr.iid)
    assert fetched.head_pipeline["id"] == first.id and fetched.head_pipeline["status"] == "success"
    assert fetched.head_pipeline["sha"] == green and fetched.pipeline["id"] == first.id
    assert fetched.detailed_merge_status == "mergeable"

    repo.maintainer.only_allow_merge_if_pipeline_succeeds = True
    repo.maintainer.save()
    red = repo.commit("feature", {".gitlab-ci.yml": RED})
    wait_idle(sim)
    second = only_pipeline(repo.root, red)
    fetched = repo.bot.mergerequests.get(mr.iid)
    assert fetched.head_pipeline["id"] == second.id and fetched.head_pipeline["status"] == "failed"
    assert fetched.detailed_merge_status == "ci_must_pass"
    listed = [p.id for p in repo.bot.mergerequests.get(mr.iid, lazy=True).pipelines.list()]
    assert listed == [second.id, first.id]  # both commits belong to the MR, newest first
    assert repo.branch_head("main") not in {p.sha for p in repo.root.pipelines.list(get_all=True)}

    rerun = repo.root.pipelines.create({"ref": "feature"})
    wait_idle(sim)
    assert repo.bot.mergerequests.get(mr.iid).head_pipeline["id"] == rerun.id


def test_a_merge_request_on_a_head_without_pipeline_gets_a_merge_request_pipeline(
    sim: RunningSim,
) -> None:
    repo = make_repo(sim)
    assert sim.sim is not None
    state = sim.sim
    project = sim.call(project_by_ref(state, "demo/app"))
    ci = "show:\n  script:\n    - echo iid=$CI_MERGE_REQUEST_IID ref=$CI_COMMIT_REF_NAME\n"

    async def commit_without_push_event() -> str:
        # The git layer directly, as a mirror or an import would: no push, so no pipeline.
        assert project is not None
        return await git_repos_for(state).commit(
            project,
            branch="quiet",
            start_branch="main",
            message="Add CI quietly",
            actions=[{"action": "create", "file_path": ".gitlab-ci.yml", "content": ci}],
            author_name="Importer",
            author_email="importer@sim.invalid",
        )

    sha = sim.call(commit_without_push_event())
    events = record_events(sim, "pipeline")
    wait_idle(sim)
    assert repo.root.pipelines.list(get_all=True) == []
    mr = repo.bot.mergerequests.create(
        {"source_branch": "quiet", "target_branch": "main", "title": "Quiet"}
    )
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, str(sha))
    assert (pipeline.source, pipeline.ref) == (
        "merge_request_event",
        f"refs/merge-requests/{mr.iid}/head",
    )
    assert pipeline.status == "success" and pipeline.user["username"] == "crewline-bot"
    job = pipeline.jobs.list(get_all=True)[0]
    assert f"iid={mr.iid} ref=quiet" in repo.root.jobs.get(job.id).trace().decode()
    assert repo.bot.mergerequests.get(mr.iid).head_pipeline["id"] == pipeline.id
    assert [p.id for p in repo.bot.mergerequests.get(mr.iid, lazy=True).pipelines.list()] == [
        pipeline.id
    ]
    final = events.wait_for(lambda e: e.payload["object_attributes"]["status"] == "success")
    assert final.payload["merge_request"]["iid"] == mr.iid
    assert final.payload["merge_request"]["source_branch"] == "quiet"
