"""Simulator CI jobs: retry semantics (a job that fails once passes on retry, the stages
after it then run), pipeline retry and cancel, live traces, timeouts, the concurrency
bound, job scopes, and a stop that leaves no process behind."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import gitlab
import pytest
import requests

from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from tests.support.forge import PROJECT, gateway_for
from tests.support.sim_mr import ROOT_TOKEN, make_repo
from tests.support.sim_pipelines import (
    alive,
    flaky_files,
    jobs_by_name,
    only_pipeline,
    poll,
    wait_idle,
)

SMOKE = """from pathlib import Path

Path("smoke.xml").write_text('<testsuite><testcase classname="deploy" name="smoke"/></testsuite>')
"""

# Writes its shell's and a background child's pids, says so, then waits for a long time.
LINGER = """stages: [test, deploy]
linger:
  stage: test
  script:
    - sleep 120 &
    - echo "$! $$" > "$PIDS"
    - echo "lingering"
    - wait
deploy:
  stage: deploy
  script:
    - echo never
"""


def gone(pids: list[int]) -> None:
    """SIGKILL was sent: each process dies within moments (a busy machine may take a few)."""
    poll(lambda: not any(alive(pid) for pid in pids), seconds=5, what=f"{pids} to die")


def test_a_job_that_fails_once_passes_on_retry_and_the_next_stage_then_runs(
    sim: RunningSim, tmp_path: Path
) -> None:
    counter = tmp_path / "flaky-count"
    repo = make_repo(sim)
    sha = repo.feature("flaky", flaky_files(counter))
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    first = jobs_by_name(pipeline)
    assert pipeline.status == "failed"
    assert (first["flaky"].status, first["deploy"].status) == ("failed", "skipped")
    assert "flaky run 1" in repo.bot.jobs.get(first["flaky"].id).trace().decode()

    retried = repo.bot.jobs.get(first["flaky"].id, lazy=True).retry()
    assert retried["id"] != first["flaky"].id and retried["name"] == "flaky"
    assert retried["status"] in ("pending", "running", "success")
    assert retried["user"]["username"] == "crewline-bot"
    wait_idle(sim)

    pipeline = repo.root.pipelines.get(pipeline.id)
    assert pipeline.status == "success"
    now = jobs_by_name(pipeline)
    assert now["flaky"].id == retried["id"] and now["flaky"].status == "success"
    assert now["deploy"].id == first["deploy"].id and now["deploy"].status == "success"
    every = pipeline.jobs.list(get_all=True, include_retried=True)
    assert sorted((job.name, job.status) for job in every) == [
        ("deploy", "success"),
        ("flaky", "failed"),
        ("flaky", "success"),
    ]
    assert counter.read_text() == "2"
    # The old job stays failed and cannot be retried twice.
    with pytest.raises(gitlab.exceptions.GitlabJobRetryError) as again:
        repo.bot.jobs.get(first["flaky"].id, lazy=True).retry()
    assert again.value.response_code == 403


async def test_the_gateway_lists_pipelines_reads_jobs_traces_reports_and_retries(
    sim: RunningSim, tmp_path: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, sim, PROJECT)
    files = {**flaky_files(tmp_path / "count", then="python3 ci/smoke.py"), "ci/smoke.py": SMOKE}
    files[".gitlab-ci.yml"] += "  artifacts:\n    reports:\n      junit: smoke.xml\n"
    sha = await asyncio.to_thread(repo.feature, "crewline/7-flaky", files)
    await asyncio.to_thread(wait_idle, sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        pipelines = await gateway.merges.pipelines(PROJECT, ref="crewline/7-flaky")
        assert [(p.sha, p.status) for p in pipelines] == [(sha, "failed")]
        assert (
            await gateway.merges.pipelines(PROJECT, ref="crewline/7-flaky", status="success") == []
        )
        jobs = {job.name: job for job in await gateway.merges.jobs(PROJECT, pipelines[0].id)}
        assert (jobs["flaky"].status, jobs["deploy"].status) == ("failed", "skipped")
        trace = await gateway.merges.job_trace(PROJECT, jobs["flaky"].id)
        assert "flaky run 1" in trace and "ERROR: Job failed: exit code 1" in trace
        assert (await gateway.merges.test_report(PROJECT, pipelines[0].id)).total_count == 0
        retried = await gateway.merges.retry_job(PROJECT, jobs["flaky"].id)
        assert retried.name == "flaky" and retried.id != jobs["flaky"].id
        await asyncio.to_thread(wait_idle, sim)
        latest = await gateway.merges.pipelines(PROJECT, sha=sha)
        assert [p.status for p in latest] == ["success"]
        report = await gateway.merges.test_report(PROJECT, latest[0].id)
        assert (report.total_count, report.success_count) == (1, 1)
        assert report.test_suites[0].name == "deploy"
        audited = {
            entry.what
            for entry in await storage.audit.for_target(f"{PROJECT}/job/{jobs['flaky'].id}")
        }
        assert {"gitlab.job.trace", "gitlab.job.retry"} <= audited


def test_pipeline_retry_reruns_only_failed_jobs(sim: RunningSim, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    repo = make_repo(sim)
    files = flaky_files(counter)
    files[".gitlab-ci.yml"] += "steady:\n  stage: test\n  script: [echo steady]\n"
    sha = repo.feature("retry-all", files)
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    before = jobs_by_name(pipeline)
    assert before["steady"].status == "success" and pipeline.status == "failed"
    pipeline.retry()
    wait_idle(sim)
    pipeline.refresh()
    after = jobs_by_name(pipeline)
    assert pipeline.status == "success"
    assert after["steady"].id == before["steady"].id  # a passed job is not run again
    assert after["flaky"].id != before["flaky"].id and after["deploy"].status == "success"


def test_cancel_stops_the_running_job_its_processes_and_what_comes_after(
    sim: RunningSim, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    repo = make_repo(sim)
    ci = LINGER.replace("linger:\n", f'variables:\n  PIDS: "{pids_file}"\nlinger:\n', 1)
    sha = repo.feature("linger", {".gitlab-ci.yml": ci})
    job = poll(lambda: repo.root.jobs.list(scope=["running"], get_all=True), what="a running job")[
        0
    ]
    # The trace is live: it shows the script's output while the job still runs.
    poll(lambda: "lingering" in repo.root.jobs.get(job.id).trace().decode(), what="live trace")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    pipeline = only_pipeline(repo.root, sha)
    assert pipeline.status == "running"
    started = time.monotonic()
    pipeline.cancel()
    assert time.monotonic() - started < 10
    pipeline.refresh()
    assert pipeline.status == "canceled"
    jobs = jobs_by_name(pipeline)
    assert (jobs["linger"].status, jobs["deploy"].status) == ("canceled", "canceled")
    gone(pids)
    assert "lingering" in repo.root.jobs.get(job.id).trace().decode()
    assert [j.id for j in repo.root.jobs.list(scope=["canceled"], get_all=True)] == sorted(
        (jobs["linger"].id, jobs["deploy"].id), reverse=True
    )
    answer = requests.get(
        f"{sim.base_url}/api/v4/projects/{repo.root.id}/jobs",
        params={"scope[]": "sleeping"},
        headers={"PRIVATE-TOKEN": ROOT_TOKEN},
        timeout=10,
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"message": "Scope contains invalid value(s)"},
    )


def test_a_job_over_its_timeout_fails_and_its_process_is_killed(
    sim: RunningSim, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    repo = make_repo(sim)
    ci = f'slow:\n  timeout: 1s\n  script:\n    - echo $$ > "{pids_file}"\n    - sleep 60\n'
    started = time.monotonic()
    sha = repo.feature("slow", {".gitlab-ci.yml": ci})
    wait_idle(sim)
    assert time.monotonic() - started < 15
    job = jobs_by_name(only_pipeline(repo.root, sha))["slow"]
    assert (job.status, job.failure_reason) == ("failed", "job_execution_timeout")
    assert "execution took longer than 1s" in repo.root.jobs.get(job.id).trace().decode()
    gone([int(pids_file.read_text())])


def test_no_more_jobs_run_at_once_than_the_configured_concurrency(tmp_path: Path) -> None:
    config = SimConfig(state_dir=tmp_path / "sim", ci_concurrency=1)
    ci = "".join(f"job{n}:\n  script: ['sleep 0.3']\n" for n in range(3))
    with running_sim(config) as sim:
        repo = make_repo(sim)
        sha = repo.feature("serial", {".gitlab-ci.yml": ci})
        wait_idle(sim)
        jobs = sorted(
            jobs_by_name(only_pipeline(repo.root, sha)).values(), key=lambda j: j.started_at
        )
    assert [job.status for job in jobs] == ["success"] * 3
    for earlier, later in itertools.pairwise(jobs):
        assert earlier.finished_at <= later.started_at


def test_stopping_the_simulator_kills_running_jobs_and_a_restart_settles_them(
    tmp_path: Path,
) -> None:
    pids_file = tmp_path / "pids"
    config = SimConfig(state_dir=tmp_path / "sim")
    ci = LINGER.replace("linger:\n", f'variables:\n  PIDS: "{pids_file}"\nlinger:\n', 1)
    with running_sim(config) as sim:
        repo = make_repo(sim)
        sha = repo.feature("linger", {".gitlab-ci.yml": ci})
        poll(pids_file.exists, what="the job to start")
        poll(lambda: len(pids_file.read_text().split()) == 2, what="both pids")
        pids = [int(pid) for pid in pids_file.read_text().split()]
        started = time.monotonic()
    assert time.monotonic() - started < 10
    gone(pids)
    assert not (config.state_dir / "ci-builds").exists() or not any(
        (config.state_dir / "ci-builds").iterdir()
    )
    with running_sim(config) as sim:
        project = gitlab.Gitlab(sim.base_url, private_token=ROOT_TOKEN).projects.get("demo/app")
        wait_idle(sim)
        pipeline = only_pipeline(project, sha)
        assert pipeline.status == "canceled"
        statuses = {job.name: job.status for job in pipeline.jobs.list(get_all=True)}
        assert statuses == {"linger": "canceled", "deploy": "skipped"}
