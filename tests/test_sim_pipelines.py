"""Simulator pipelines through python-gitlab over real HTTP: pushes create pipelines, the
runner executes stages in order in a checkout with the configured variables, JUnit reports
become the test report, invalid configurations fail, and the list filters work."""

from __future__ import annotations

from pathlib import Path

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from sim.core.base import create_user
from sim.git.hooks import ZERO_SHA
from tests.support.sim_git import clone_url, git
from tests.support.sim_mr import BOT_TOKEN, MAINTAINER_TOKEN, ROOT_TOKEN, client, make_repo
from tests.support.sim_pipelines import (
    MIXED_SUITE,
    PASSING_SUITE,
    jobs_by_name,
    only_pipeline,
    unittest_files,
    wait_idle,
)

THREE_STAGES = """stages: [build, test, deploy]
variables:
  GREETING: hello
  TARGET: global
build:
  stage: build
  variables:
    TARGET: job
  script:
    - echo "greeting=$GREETING target=$TARGET"
    - echo "sha=$CI_COMMIT_SHA ref=$CI_COMMIT_REF_NAME job=$CI_JOB_NAME"
    - echo "pipeline=$CI_PIPELINE_ID project=$CI_PROJECT_PATH probe=${SIM_SECRET_PROBE:-unset}"
    - echo "built" > build.txt
unit:
  stage: test
  script:
    - test ! -e build.txt
    - python3 ci/junit.py --output report.xml
  artifacts:
    when: always
    reports:
      junit: report.xml
deploy:
  stage: deploy
  script:
    - echo deploying
"""


def test_push_runs_stages_in_order_in_a_fresh_checkout(
    sim: RunningSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_SECRET_PROBE", "leaked")  # the simulator's environment stays out
    repo = make_repo(sim)
    sha = repo.feature("feature", {".gitlab-ci.yml": THREE_STAGES, **unittest_files(PASSING_SUITE)})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert (pipeline.ref, pipeline.source, pipeline.status) == ("feature", "push", "success")
    assert pipeline.before_sha == ZERO_SHA and pipeline.yaml_errors is None
    assert pipeline.user["username"] == "root" and pipeline.started_at and pipeline.finished_at
    jobs = jobs_by_name(pipeline)
    assert [(j.name, j.stage, j.status) for j in jobs.values()] == [
        ("build", "build", "success"),
        ("unit", "test", "success"),
        ("deploy", "deploy", "success"),
    ]
    assert jobs["build"].finished_at <= jobs["unit"].started_at  # stages run one after another
    assert jobs["unit"].finished_at <= jobs["deploy"].started_at
    assert jobs["build"].commit["id"] == sha and jobs["build"].pipeline["id"] == pipeline.id
    trace = repo.root.jobs.get(jobs["build"].id).trace().decode()
    assert '$ echo "greeting=$GREETING target=$TARGET"' in trace
    assert "greeting=hello target=job" in trace  # job variables override global ones
    assert f"sha={sha} ref=feature job=build" in trace
    assert f"pipeline={pipeline.id} project=demo/app probe=unset" in trace
    assert trace.rstrip().endswith("Job succeeded")
    report = pipeline.test_report.get()
    assert (report.total_count, report.success_count, report.failed_count) == (2, 2, 0)
    assert [s["name"] for s in report.test_suites] == ["unit"]
    assert report.test_suites[0]["build_ids"] == [jobs["unit"].id]
    names = {(c["classname"], c["name"], c["status"]) for c in report.test_suites[0]["test_cases"]}
    assert names == {
        ("tests.test_suite.Passing", "test_one", "success"),
        ("tests.test_suite.Passing", "test_two", "success"),
    }


def test_a_failed_stage_skips_later_ones_and_the_report_counts_each_outcome(
    sim: RunningSim,
) -> None:
    repo = make_repo(sim)
    sha = repo.feature("broken", {".gitlab-ci.yml": THREE_STAGES, **unittest_files(MIXED_SUITE)})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "failed"
    jobs = jobs_by_name(pipeline)
    assert {name: job.status for name, job in jobs.items()} == {
        "build": "success",
        "unit": "failed",
        "deploy": "skipped",
    }
    assert jobs["unit"].failure_reason == "script_failure"
    assert not hasattr(jobs["build"], "failure_reason")
    assert jobs["deploy"].started_at is None
    trace = repo.root.jobs.get(jobs["unit"].id).trace().decode()
    assert "FAIL: test_fails" in trace and trace.rstrip().endswith("ERROR: Job failed: exit code 1")
    report = pipeline.test_report.get()
    counts = (report.total_count, report.success_count, report.failed_count)
    assert (*counts, report.error_count, report.skipped_count) == (4, 1, 1, 1, 1)
    cases = {c["name"]: c for c in report.test_suites[0]["test_cases"]}
    assert cases["test_fails"]["status"] == "failed"
    assert "greeting mismatch" in cases["test_fails"]["system_output"]
    assert cases["test_errors"]["status"] == "error"
    assert "database unreachable" in cases["test_errors"]["system_output"]
    assert cases["test_skipped"]["system_output"] == "not on this platform"
    summary = pipeline.test_report_summary.get()
    assert summary.total["count"] == 4 and summary.total["failed"] == 1
    assert summary.test_suites[0]["name"] == "unit"


def test_a_push_over_smart_http_creates_a_pipeline(sim: RunningSim, tmp_path: Path) -> None:
    repo = make_repo(sim)
    before = repo.branch_head("main")
    work = tmp_path / "work"
    git("clone", "--quiet", clone_url(sim, MAINTAINER_TOKEN), str(work))
    (work / ".gitlab-ci.yml").write_text("check:\n  script:\n    - test -f README.md\n")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "Add CI", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert (pipeline.ref, pipeline.before_sha, pipeline.status) == ("main", before, "success")
    assert pipeline.user["username"] == "maintainer"


def test_no_configuration_no_pipeline_and_an_invalid_one_fails_with_yaml_errors(
    sim: RunningSim,
) -> None:
    repo = make_repo(sim)
    plain = repo.feature("plain", {"notes.txt": "no CI here\n"})
    bad = repo.feature("bad", {".gitlab-ci.yml": "test:\n  stage: nowhere\n  script: ['true']\n"})
    wait_idle(sim)
    assert repo.root.pipelines.list(sha=plain, get_all=True) == []
    pipeline = only_pipeline(repo.root, bad)
    assert pipeline.status == "failed"
    assert pipeline.yaml_errors == (
        "test job: chosen stage nowhere does not exist; available stages are "
        ".pre, build, test, deploy, .post"
    )
    assert pipeline.jobs.list(get_all=True) == []
    # The API refuses instead of creating a failed pipeline, as GitLab's does.
    for ref, message in (
        ("plain", "Missing CI config file"),
        ("bad", pipeline.yaml_errors),
        ("no-such-branch", "Reference not found"),
    ):
        with pytest.raises(gitlab.exceptions.GitlabCreateError) as refused:
            repo.bot.pipelines.create({"ref": ref})
        assert refused.value.response_code == 400
        assert refused.value.error_message == {"base": [message]}
    answer = requests.post(
        f"{sim.base_url}/api/v4/projects/{repo.root.id}/pipeline",
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=10,
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "ref is missing"})


def test_skip_ci_in_the_commit_message_makes_a_skipped_pipeline(sim: RunningSim) -> None:
    repo = make_repo(sim)
    sha = repo.feature(
        "quiet", {".gitlab-ci.yml": "job:\n  script: [exit 1]\n"}, message="Docs only [skip ci]"
    )
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "skipped" and pipeline.jobs.list(get_all=True) == []


def test_api_pipelines_take_variables_and_need_developer_access(sim: RunningSim) -> None:
    repo = make_repo(sim)
    ci = "show:\n  variables:\n    TARGET: yaml\n  script:\n    - echo target=$TARGET\n"
    repo.feature("vars", {".gitlab-ci.yml": ci})
    wait_idle(sim)
    created = repo.bot.pipelines.create(
        {"ref": "vars", "variables": [{"key": "TARGET", "value": "staging"}]}
    )
    assert (created.source, created.ref, created.user["username"]) == (
        "api",
        "vars",
        "crewline-bot",
    )
    wait_idle(sim)
    job = jobs_by_name(repo.bot.pipelines.get(created.id))["show"]
    assert "target=staging" in repo.bot.jobs.get(job.id).trace().decode()  # API beats YAML
    assert [(v.key, v.value) for v in created.variables.list()] == [("TARGET", "staging")]
    assert sim.sim is not None
    outsider = client(sim, "outsider-token").projects.get(repo.root.id, lazy=True)
    reporter = client(sim, "reporter-token").projects.get(repo.root.id, lazy=True)
    sim.call(create_user(sim.sim, "outsider", "outsider-token"))
    reporter_id = sim.call(create_user(sim.sim, "reporter", "reporter-token"))
    repo.root.members.create({"user_id": reporter_id, "access_level": 20})
    with pytest.raises(gitlab.exceptions.GitlabListError) as hidden:
        outsider.pipelines.list(get_all=True)
    assert hidden.value.response_code == 404  # a private project stays invisible
    assert created.id in [p.id for p in reporter.pipelines.list(get_all=True)]
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as denied:
        reporter.pipelines.create({"ref": "vars"})
    assert denied.value.response_code == 403
    with pytest.raises(gitlab.exceptions.GitlabJobRetryError) as no_retry:
        reporter.jobs.get(job.id, lazy=True).retry()
    assert no_retry.value.response_code == 403


def test_pipeline_list_filters_sorts_and_paginates(sim: RunningSim) -> None:
    repo = make_repo(sim)
    good = repo.feature("good", {".gitlab-ci.yml": "ok:\n  script: ['true']\n"})
    bad = repo.feature("bad", {".gitlab-ci.yml": "ko:\n  script: ['false']\n"})
    wait_idle(sim)
    api = repo.root.pipelines.create({"ref": "good"})
    wait_idle(sim)
    everything = repo.root.pipelines.list(get_all=True)
    assert [p.id for p in everything] == sorted((p.id for p in everything), reverse=True)
    assert len(everything) == 3
    assert [p.sha for p in repo.root.pipelines.list(ref="bad", get_all=True)] == [bad]
    assert {p.ref for p in repo.root.pipelines.list(sha=good, get_all=True)} == {"good"}
    assert [p.ref for p in repo.root.pipelines.list(status="failed", get_all=True)] == ["bad"]
    assert [p.id for p in repo.root.pipelines.list(source="api", get_all=True)] == [api.id]
    ascending = repo.root.pipelines.list(order_by="id", sort="asc", get_all=True)
    assert [p.id for p in ascending] == sorted(p.id for p in everything)
    page = repo.root.pipelines.list(per_page=1, page=2)
    assert len(page) == 1 and page[0].id == everything[1].id
    headers = {"PRIVATE-TOKEN": ROOT_TOKEN}
    url = f"{sim.base_url}/api/v4/projects/{repo.root.id}/pipelines"
    listed = requests.get(url, params={"per_page": 1}, headers=headers, timeout=10)
    assert listed.headers["X-Total"] == "3"
    refused = requests.get(url, params={"status": "green"}, headers=headers, timeout=10)
    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "status does not have a valid value"},
    )
    latest = repo.root.pipelines.latest(ref="good")
    assert latest.id == api.id and latest.status == "success"
    with pytest.raises(gitlab.exceptions.GitlabHttpError) as none_yet:
        repo.root.pipelines.latest(ref="main")
    assert none_yet.value.response_code == 403  # GitLab's answer when the head has none


def test_unreadable_or_missing_reports_show_in_the_trace_and_the_report(sim: RunningSim) -> None:
    repo = make_repo(sim)
    ci = """garbled:
  script: ['echo "<testsuite><testcase" > bad.xml']
  artifacts:
    reports:
      junit: bad.xml
absent:
  script: ['echo nothing to report']
  artifacts:
    reports:
      junit: [missing/*.xml, ../outside.xml]
failing:
  script: ['echo "<testsuite/>" > r.xml', 'exit 1']
  artifacts:
    reports:
      junit: r.xml
"""
    sha = repo.feature("reports", {".gitlab-ci.yml": ci})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    jobs = jobs_by_name(pipeline)
    absent_trace = repo.root.jobs.get(jobs["absent"].id).trace().decode()
    assert "WARNING: missing/*.xml: no matching files" in absent_trace
    assert "WARNING: '../outside.xml': give a path inside the project directory" in absent_trace
    report = pipeline.test_report.get()
    # A failed job's reports are not collected unless artifacts:when says so.
    assert [suite["name"] for suite in report.test_suites] == ["garbled"]
    garbled = report.test_suites[0]
    assert garbled["suite_error"].startswith("JUnit XML parsing failed")
    assert garbled["test_cases"] == [] and report.total_count == 0
