"""Simulator fault injection: 5xx, 429 with Retry-After, counts, seeded rates and reset."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
import requests

from forge.sim.app import RunningSim
from tests.sim_issues_support import BOT_TOKEN, ROOT_TOKEN, client, make_project


def faults_url(sim: RunningSim) -> str:
    return f"{sim.base_url}/api/v4/_sim/faults"


def add_fault(sim: RunningSim, **rule: Any) -> requests.Response:
    return requests.post(
        faults_url(sim), json=rule, headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5
    )


def get_issues(sim: RunningSim, project_id: int) -> requests.Response:
    return requests.get(
        f"{sim.base_url}/api/v4/projects/{project_id}/issues",
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=5,
    )


def test_503_once_then_python_gitlab_retries_to_success(sim: RunningSim) -> None:
    project_id = make_project(sim)
    rule = add_fault(sim, method="GET", path="/api/v4/projects/*/issues", status=503, count=1)
    assert rule.status_code == 201
    assert rule.json()["remaining"] == 1
    patient = client(sim, retry_transient_errors=True).projects.get(project_id, lazy=True)
    assert patient.issues.list() == []
    (listed,) = requests.get(
        faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5
    ).json()
    assert (listed["hits"], listed["remaining"]) == (1, 0)


def test_5xx_body_and_python_gitlab_without_retries(sim: RunningSim) -> None:
    project_id = make_project(sim)
    add_fault(sim, path_regex=r"/issues$", status=502, count=2)
    raw = get_issues(sim, project_id)
    assert (raw.status_code, raw.json()) == (502, {"message": "502 Bad Gateway"})
    impatient = client(sim).projects.get(project_id, lazy=True)
    with pytest.raises(gitlab.exceptions.GitlabListError) as failed:
        impatient.issues.list()
    assert failed.value.response_code == 502
    assert get_issues(sim, project_id).status_code == 200  # the count is spent


def test_429_carries_retry_after(sim: RunningSim) -> None:
    project_id = make_project(sim)
    add_fault(sim, method="*", path="/api/v4/projects/*", status=429, retry_after=7, count=1)
    limited = requests.get(
        f"{sim.base_url}/api/v4/projects/{project_id}",
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=5,
    )
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.json() == {"message": "429 Too Many Requests"}


def test_method_filter_and_reset(sim: RunningSim) -> None:
    project_id = make_project(sim)
    add_fault(sim, method="POST", path="/api/v4/*", status=500)
    project = client(sim).projects.get(project_id)  # GETs pass
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as failed:
        project.issues.create({"title": "blocked"})
    assert failed.value.response_code == 500
    # the admin endpoints are never faulted, even by a rule that matches them
    assert add_fault(sim, path="/elsewhere", status=500).status_code == 201
    reset = requests.delete(faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5)
    assert reset.status_code == 204
    assert (
        requests.get(faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5).json() == []
    )
    assert project.issues.create({"title": "now it works"}).iid == 1


def test_seeded_rate_is_reproducible(sim: RunningSim) -> None:
    project_id = make_project(sim)

    def pattern() -> list[int]:
        add_fault(sim, seed=42)
        add_fault(sim, path="/api/v4/projects/*/issues", status=503, rate=0.5)
        statuses = [get_issues(sim, project_id).status_code for _ in range(30)]
        requests.delete(faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5)
        return statuses

    first, second = pattern(), pattern()
    assert first == second
    assert set(first) == {200, 503}  # a 0.5 rate over 30 draws hits some, not all


def test_latency_rule_still_answers(sim: RunningSim) -> None:
    project_id = make_project(sim)
    rule = add_fault(sim, path="/api/v4/projects/*/issues", latency_ms=20, count=1).json()
    assert rule["status"] is None
    assert get_issues(sim, project_id).status_code == 200
    (listed,) = requests.get(
        faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5
    ).json()
    assert listed["hits"] == 1


def test_admin_only_and_validation(sim: RunningSim) -> None:
    refused = requests.post(
        faults_url(sim), json={"status": 500}, headers={"PRIVATE-TOKEN": BOT_TOKEN}, timeout=5
    )
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})
    for bad in (
        {"status": 500, "rate": 2},
        {"status": 200},
        {"path_regex": "(", "status": 500},
        {"method": "BREW", "status": 500},
        {"path": "/x"},
    ):
        answer = add_fault(sim, **bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]
