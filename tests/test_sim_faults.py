"""Simulator fault injection: 5xx, 429 with Retry-After, counts, seeded rates and reset;
faults before a request (not performed) and after it (performed, answer lost or dropped),
on the API and on git smart HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from tests.support.faults import add_fault, faults_url
from tests.support.sim_git import PushRecorder, clone_url, git
from tests.support.sim_git import make_project as git_project
from tests.support.sim_issues import BOT_TOKEN, ROOT_TOKEN, client, make_project


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


def create_issue(sim: RunningSim, project_id: int, title: str) -> requests.Response:
    return requests.post(
        f"{sim.base_url}/api/v4/projects/{project_id}/issues",
        json={"title": title},
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=5,
    )


def titles(sim: RunningSim, project_id: int) -> list[str]:
    return sorted(issue["title"] for issue in get_issues(sim, project_id).json())


def test_before_is_not_performed_and_after_is_performed_with_its_answer_lost(
    sim: RunningSim,
) -> None:
    project_id = make_project(sim)
    before = add_fault(sim, method="POST", path="/api/v4/projects/*/issues", status=503, count=1)
    assert before.json()["when"] == "before"
    assert create_issue(sim, project_id, "refused").status_code == 503
    assert titles(sim, project_id) == []

    after = add_fault(
        sim, method="POST", path="/api/v4/projects/*/issues", status=502, when="after", count=1
    )
    assert (after.status_code, after.json()["when"]) == (201, "after")
    lost = create_issue(sim, project_id, "performed")
    assert (lost.status_code, lost.json()) == (502, {"message": "502 Bad Gateway"})
    assert titles(sim, project_id) == ["performed"]  # the write happened all the same


def test_after_429_carries_retry_after_and_replaces_a_refusal_too(sim: RunningSim) -> None:
    project_id = make_project(sim)
    add_fault(sim, method="POST", path_regex=r"/issues$", status=429, retry_after=3, when="after")
    limited = create_issue(sim, project_id, "counted")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    refused = requests.post(  # the handler answers 400 (no title); the fault answers instead
        f"{sim.base_url}/api/v4/projects/{project_id}/issues",
        json={},
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=5,
    )
    assert refused.status_code == 429
    assert titles(sim, project_id) == ["counted"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_drop_closes_the_connection_without_an_answer(sim: RunningSim, when: str) -> None:
    project_id = make_project(sim)
    rule = add_fault(
        sim, method="POST", path="/api/v4/projects/*/issues", drop=True, when=when, count=1
    )
    assert rule.json()["drop"] is True
    with pytest.raises(requests.ConnectionError):
        create_issue(sim, project_id, "dropped")
    assert titles(sim, project_id) == (["dropped"] if when == "after" else [])
    assert create_issue(sim, project_id, "next").status_code == 201  # the count is spent


def test_after_latency_is_spent_once_the_request_was_performed(sim: RunningSim) -> None:
    project_id = make_project(sim)
    add_fault(sim, method="POST", path_regex=r"/issues$", latency_ms=3000, when="after", count=1)
    with pytest.raises(requests.Timeout):
        requests.post(
            f"{sim.base_url}/api/v4/projects/{project_id}/issues",
            json={"title": "slow"},
            headers={"PRIVATE-TOKEN": BOT_TOKEN},
            timeout=0.5,
        )
    assert titles(sim, project_id) == ["slow"]


def test_one_rule_can_be_removed_by_id(sim: RunningSim) -> None:
    project_id = make_project(sim)
    first = add_fault(sim, path_regex=r"/issues$", status=500).json()
    second = add_fault(sim, path="/nowhere", status=500).json()
    headers = {"PRIVATE-TOKEN": ROOT_TOKEN}
    removed = requests.delete(f"{faults_url(sim)}/{first['id']}", headers=headers, timeout=5)
    assert removed.status_code == 204
    assert [r["id"] for r in requests.get(faults_url(sim), headers=headers, timeout=5).json()] == [
        second["id"]
    ]
    assert get_issues(sim, project_id).status_code == 200
    again = requests.delete(f"{faults_url(sim)}/{first['id']}", headers=headers, timeout=5)
    assert again.status_code == 404
    as_bot = requests.delete(
        f"{faults_url(sim)}/{second['id']}", headers={"PRIVATE-TOKEN": BOT_TOKEN}, timeout=5
    )
    assert as_bot.status_code == 403


def test_when_and_drop_are_validated(sim: RunningSim) -> None:
    for bad in (
        {"status": 500, "when": "later"},
        {"status": 500, "drop": True},
        {"drop": "maybe"},
        {"when": "after"},
    ):
        answer = add_fault(sim, **bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]


def _work_branch(sim: RunningSim, tmp_path: Path) -> tuple[Path, str]:
    work = tmp_path / "work"
    git("clone", "--quiet", clone_url(sim, BOT_TOKEN), str(work))
    git("switch", "--quiet", "-c", "feature/x", cwd=work)
    (work / "one.txt").write_text("1\n")
    git("add", "one.txt", cwd=work)
    git("commit", "--quiet", "-m", "one", cwd=work)
    return work, git("rev-parse", "HEAD", cwd=work).stdout.strip()


def _branch_sha(sim: RunningSim, project_id: int) -> str | None:
    branches = client(sim, ROOT_TOKEN).projects.get(project_id).branches.list(get_all=True)
    return next((b.commit["id"] for b in branches if b.name == "feature/x"), None)


@pytest.mark.parametrize("rule", [{"status": 503}, {"drop": True}])
def test_a_git_push_performed_whose_answer_is_lost(
    sim: RunningSim, tmp_path: Path, rule: dict[str, Any]
) -> None:
    project_id = git_project(sim)
    recorder = PushRecorder(sim)
    work, head = _work_branch(sim, tmp_path)
    add_fault(sim, method="POST", path="*/git-receive-pack", when="after", count=1, **rule)
    pushed = git("push", "--quiet", "origin", "feature/x", cwd=work, check=False)
    assert pushed.returncode != 0  # the client saw a failure...
    assert _branch_sha(sim, project_id) == head  # ...of a push that happened
    assert [e["after"] for e in recorder.settled() if e["ref"] == "refs/heads/feature/x"] == [head]


def test_a_git_push_failed_before_is_not_performed(sim: RunningSim, tmp_path: Path) -> None:
    project_id = git_project(sim)
    work, _ = _work_branch(sim, tmp_path)
    add_fault(sim, method="POST", path="*/git-receive-pack", status=502, count=1)
    pushed = git("push", "--quiet", "origin", "feature/x", cwd=work, check=False)
    assert pushed.returncode != 0 and "502" in pushed.stderr
    assert _branch_sha(sim, project_id) is None


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_git_fetch_that_fails(sim: RunningSim, tmp_path: Path, when: str) -> None:
    git_project(sim)
    add_fault(sim, method="POST", path="*/git-upload-pack", status=500, when=when, count=1)
    other = tmp_path / "other"
    failed = git("clone", "--quiet", clone_url(sim, BOT_TOKEN), str(other), check=False)
    assert failed.returncode != 0 and not (other / "README.md").exists()
    git("clone", "--quiet", clone_url(sim, BOT_TOKEN), str(other))  # the count is spent
    assert (other / "README.md").read_text() == "# app\n"
