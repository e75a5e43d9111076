"""git itself against the simulator over smart HTTP: clone, push, protected branches,
authentication, and the push events a push produces."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from sim.core.base import REPORTER, create_user
from tests.support.sim_git import (
    BOT_TOKEN,
    MAINTAINER_TOKEN,
    PushRecorder,
    client,
    clone_url,
    git,
    make_project,
)

PROTECTED_REFUSAL = (
    "GitLab: You are not allowed to push code to protected branches on this project."
)


def clone(sim: RunningSim, token: str, dest: Path) -> Path:
    git("clone", "--quiet", clone_url(sim, token), str(dest))
    return dest


def commit_file(work: Path, name: str, content: str) -> str:
    (work / name).write_text(content)
    git("add", name, cwd=work)
    git("commit", "--quiet", "-m", f"Add {name}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_clone_commit_and_push_a_branch_emits_a_push_event(sim: RunningSim, tmp_path: Path) -> None:
    project_id = make_project(sim)
    recorder = PushRecorder(sim)
    work = clone(sim, BOT_TOKEN, tmp_path / "work")
    assert (work / "README.md").read_text() == "# app\n"
    git("switch", "--quiet", "-c", "feature/x", cwd=work)
    first = commit_file(work, "one.txt", "1\n")
    head = commit_file(work, "two.txt", "2\n")
    git("push", "--quiet", "origin", "feature/x", cwd=work)

    branch = client(sim, BOT_TOKEN).projects.get(project_id).branches.get("feature/x")
    assert branch.commit["id"] == head
    pushes = [e for e in recorder.settled() if e["ref"] == "refs/heads/feature/x"]
    assert len(pushes) == 1
    event = pushes[0]
    assert event["object_kind"] == "push" and event["before"] == "0" * 40
    assert event["after"] == head and event["checkout_sha"] == head
    assert event["user_username"] == "crewline-bot" and event["project_id"] == project_id
    assert event["project"]["path_with_namespace"] == "demo/app"
    assert event["total_commits_count"] == 2
    assert [c["id"] for c in event["commits"]] == [first, head]
    assert event["commits"][1]["added"] == ["two.txt"]
    assert event["ref_protected"] is False

    commit_file(work, "three.txt", "3\n")
    git("push", "--quiet", "origin", "feature/x", cwd=work)
    later = [e for e in recorder.settled() if e["ref"] == "refs/heads/feature/x"][-1]
    assert later["before"] == head and later["total_commits_count"] == 1


def test_developer_push_to_protected_main_is_refused(sim: RunningSim, tmp_path: Path) -> None:
    project_id = make_project(sim)
    project = client(sim).projects.get(project_id)
    main_before = project.branches.get("main").commit["id"]
    recorder = PushRecorder(sim)
    work = clone(sim, BOT_TOKEN, tmp_path / "work")
    commit_file(work, "direct.txt", "nope\n")
    refused = git("push", "origin", "main", cwd=work, check=False)
    assert refused.returncode != 0
    assert f"remote: {PROTECTED_REFUSAL}" in refused.stderr
    assert project.branches.get("main").commit["id"] == main_before
    deleted = git("push", "origin", "--delete", "main", cwd=work, check=False)
    assert deleted.returncode != 0
    assert "You can only delete protected branches using the web interface." in deleted.stderr
    assert not [e for e in recorder.settled() if e["ref"] == "refs/heads/main"]


def test_maintainer_push_to_main_works_but_not_a_force_push(
    sim: RunningSim, tmp_path: Path
) -> None:
    project_id = make_project(sim)
    recorder = PushRecorder(sim)
    work = clone(sim, MAINTAINER_TOKEN, tmp_path / "work")
    head = commit_file(work, "maint.txt", "ok\n")
    git("push", "--quiet", "origin", "main", cwd=work)
    assert client(sim).projects.get(project_id).branches.get("main").commit["id"] == head
    event = [e for e in recorder.settled() if e["ref"] == "refs/heads/main"][-1]
    assert event["after"] == head and event["ref_protected"] is True
    assert event["user_username"] == "maintainer"
    git("reset", "--quiet", "--hard", "HEAD~1", cwd=work)
    commit_file(work, "rewrite.txt", "rewritten\n")
    forced = git("push", "--force", "origin", "main", cwd=work, check=False)
    assert forced.returncode != 0
    assert "not allowed to force push code to a protected branch" in forced.stderr
    assert client(sim).projects.get(project_id).branches.get("main").commit["id"] == head


def test_unprotected_main_accepts_developer_pushes(sim: RunningSim, tmp_path: Path) -> None:
    project_id = make_project(sim, protect_main=False)
    work = clone(sim, BOT_TOKEN, tmp_path / "work")
    head = commit_file(work, "free.txt", "free\n")
    git("push", "--quiet", "origin", "main", cwd=work)
    assert client(sim).projects.get(project_id).branches.get("main").commit["id"] == head


def test_bad_or_missing_credentials_are_refused(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    bad = git("clone", clone_url(sim, "wrong-token"), str(tmp_path / "bad"), check=False)
    assert bad.returncode != 0
    assert "401" in bad.stderr or "Authentication failed" in bad.stderr
    anonymous_url = sim.base_url + "/demo/app.git"
    anonymous = git("clone", anonymous_url, str(tmp_path / "anon"), check=False)
    assert anonymous.returncode != 0
    response = requests.get(
        anonymous_url + "/info/refs", params={"service": "git-upload-pack"}, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="GitLab"'


def test_any_username_works_with_a_token_and_access_levels_apply(
    sim: RunningSim, tmp_path: Path
) -> None:
    project_id = make_project(sim)
    work = tmp_path / "work"
    git("clone", "--quiet", clone_url(sim, BOT_TOKEN, user="anything"), str(work))
    assert (work / "README.md").exists()
    # A Reporter may fetch but not push.
    reporter_token = "reporter-token"

    async def add_reporter() -> None:
        assert sim.sim is not None
        user_id = await create_user(sim.sim, "reader", reporter_token)
        async with sim.sim.store.write() as conn:
            await conn.execute(
                "INSERT INTO members (project_id, user_id, access_level) VALUES (?, ?, ?)",
                (project_id, user_id, REPORTER),
            )

    sim.call(add_reporter())
    reader = tmp_path / "reader"
    git("clone", "--quiet", clone_url(sim, reporter_token), str(reader))
    commit_file(reader, "r.txt", "r\n")
    git("switch", "--quiet", "-c", "reader-branch", cwd=reader)
    pushed = git("push", "origin", "reader-branch", cwd=reader, check=False)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr or "not allowed" in pushed.stderr
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        client(sim, reporter_token).projects.get(project_id).branches.get("reader-branch")


def test_large_push_streams_through_chunked_transfer(sim: RunningSim, tmp_path: Path) -> None:
    project_id = make_project(sim)
    work = clone(sim, BOT_TOKEN, tmp_path / "work")
    git("switch", "--quiet", "-c", "big", cwd=work)
    payload = os.urandom(3 * 1024 * 1024)  # beyond git's 1 MiB post buffer: chunked upload
    (work / "blob.bin").write_bytes(payload)
    git("add", "blob.bin", cwd=work)
    git("commit", "--quiet", "-m", "Big file", cwd=work)
    git("push", "--quiet", "origin", "big", cwd=work)
    project = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    assert project.files.raw("blob.bin", ref="big") == payload


def test_gzip_request_bodies_are_decoded(sim: RunningSim) -> None:
    project_id = make_project(sim)
    head = client(sim).projects.get(project_id).branches.get("main").commit["id"]
    want = f"want {head}\n"
    body = f"{len(want) + 4:04x}{want}00000009done\n".encode()
    response = requests.post(
        f"{sim.base_url}/demo/app.git/git-upload-pack",
        data=gzip.compress(body),
        headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
        auth=("oauth2", BOT_TOKEN),
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert response.content.startswith(b"0008NAK\n")
    assert b"PACK" in response.content
