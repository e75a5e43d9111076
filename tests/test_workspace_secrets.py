"""The GitLab token never reaches the disk, a URL, an exception or a log; git runs with a clean
environment and a deadline."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from roles.workspace.errors import GitCommandError, GitTimeout
from roles.workspace.gitcmd import Git, http_origin
from roles.workspace.settings import WorkspaceSettings
from roles.workspace.workspaces import Workspaces
from sim.core.app import RunningSim
from tests.support.sim_git import BOT_TOKEN, ROOT_TOKEN, clone_url
from tests.support.workspace import AUTHOR, PROJECT, files_under, workspace_setup

ENCODED = base64.b64encode(f"oauth2:{BOT_TOKEN}".encode()).decode()


def assert_no_secret(text: str) -> None:
    assert BOT_TOKEN not in text and ENCODED not in text


async def test_the_token_is_written_to_no_file_after_open_commit_and_push(
    sim: RunningSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="roles")
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 9, "Secret-free", "main", "r1")
        (wt.path / "f.txt").write_text("f\n")
        await ws.commit_all(wt, "f", *AUTHOR)
        pushed = await ws.push(wt, None)
        assert await ws.remote_branch_sha(PROJECT, wt.branch) == pushed
        rebased = await ws.rebase(wt, "main")
        assert rebased.ok
        scanned = 0
        for path in files_under(ws.root):
            data = path.read_bytes()
            assert BOT_TOKEN.encode() not in data and ENCODED.encode() not in data, path
            scanned += 1
        assert scanned > 20  # the mirror, the checkout and the records were all looked at
        config = next((ws.root / "mirrors").glob("*.git")) / "config"
        assert f'url = "{setup.url}"' in config.read_text()
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("roles.")]
        assert any("pushed crewline/9-secret-free" in line for line in ours)
        assert_no_secret("\n".join(ours))
        await ws.close(wt)


async def test_git_errors_carry_no_token(sim: RunningSim, tmp_path: Path) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        missing = f"{sim.base_url}/demo/nope.git"
        with pytest.raises(GitCommandError) as not_found:
            await ws.open("demo/nope", missing, 1, "x", "main", "r1")
        assert "not found" in str(not_found.value).lower()
        assert_no_secret(str(not_found.value))

        wrong = "glpat-ThisIsNotAValidToken123"
        intruder = Workspaces(WorkspaceSettings(root=tmp_path / "other"), setup.leases, "w9", wrong)
        with pytest.raises(GitCommandError) as denied:
            await intruder.open(PROJECT, setup.url, 2, "x", "main", "r1")
        message = str(denied.value)
        assert wrong not in message
        assert base64.b64encode(f"oauth2:{wrong}".encode()).decode() not in message
        assert "could not read Username" in message or "Authentication failed" in message

        with pytest.raises(ValueError, match="must not carry credentials") as creds:
            await ws.open(PROJECT, clone_url(sim, BOT_TOKEN), 3, "x", "main", "r1")
        assert_no_secret(str(creds.value))
        with pytest.raises(ValueError, match="not an http"):
            http_origin("git@gitlab.example.com:group/app.git")


def test_sanitize_redacts_the_token_its_header_and_url_credentials(tmp_path: Path) -> None:
    git = Git(tmp_path, 5, "tok-123456")
    header = base64.b64encode(b"oauth2:tok-123456").decode()
    text = (
        f"fatal: token tok-123456 header Authorization: Basic {header} "
        "url https://user:pw@host/x.git and http://oauth2:tok-123456@h/y"
    )
    cleaned = git.sanitize(text)
    assert "tok-123456" not in cleaned and header not in cleaned and "pw@" not in cleaned
    assert "https://[REDACTED]@host/x.git" in cleaned
    with pytest.raises(ValueError, match="token is required"):
        Git(tmp_path, 5, "")


async def test_git_sees_no_user_configuration_and_never_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "user-home"
    home.mkdir()
    (home / ".gitconfig").write_text("[alias]\n\tleak = !echo leaked\n[user]\n\tname = Leak\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CREWLINE_GITLAB_TOKEN", "glpat-shouldnotbevisible")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    git = Git(tmp_path / "crewline-home", 10, "tok-abc")
    listing = await git.run(["config", "--list", "--show-origin"], cwd=tmp_path)
    assert "Leak" not in listing.stdout and "leak" not in listing.stdout
    assert "core.hookspath=/dev/null" in listing.stdout
    env = await git.run(["var", "GIT_EDITOR"], cwd=tmp_path, ok_codes=(0, 128))
    assert "glpat" not in env.stdout
    shown = await git.run(["-c", "alias.env=!env", "env"], cwd=tmp_path)
    assert "CREWLINE_GITLAB_TOKEN" not in shown.stdout and "GIT_DIR=" not in shown.stdout
    assert f"HOME={tmp_path / 'crewline-home'}" in shown.stdout
    assert "GIT_TERMINAL_PROMPT=0" in shown.stdout


def slow_down_git(sim: RunningSim, latency_ms: int) -> None:
    requests.post(
        f"{sim.base_url}/api/v4/_sim/faults",
        json={"path": "/demo/app.git/*", "latency_ms": latency_ms},
        headers={"PRIVATE-TOKEN": ROOT_TOKEN},
        timeout=5,
    ).raise_for_status()


async def test_a_hanging_remote_is_killed_at_the_deadline(sim: RunningSim, tmp_path: Path) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        slow_down_git(sim, latency_ms=1500)
        ws = setup.workspaces(git_timeout_seconds=0.3)
        with pytest.raises(GitTimeout, match=r"killed after 0\.3 s"):
            await ws.open(PROJECT, setup.url, 5, "Slow", "main", "r1")
        assert await setup.leases.get(f"workspace:{PROJECT}:5") is None


async def test_a_mirror_config_changed_by_an_agent_is_rewritten_before_a_push(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 6, "Tamper", "main", "r1")
        trap = tmp_path / "trap"
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "pre-push").write_text(f"#!/bin/sh\nenv > {trap}\n")
        (hooks / "pre-push").chmod(0o755)
        mirror = next((ws.root / "mirrors").glob("*.git"))
        with (mirror / "config").open("a") as config:
            config.write(
                f'[core]\n\thooksPath = {hooks}\n[remote "origin"]\n\turl = http://evil.invalid/x.git\n'
            )
        (wt.path / "t.txt").write_text("t\n")
        await ws.commit_all(wt, "t", *AUTHOR)
        await ws.push(wt, None)
        assert not trap.exists()
        assert "evil" not in (mirror / "config").read_text()
        await ws.close(wt)


def test_workspace_settings_refuse_unknown_keys_and_bad_values() -> None:
    assert WorkspaceSettings().root == Path("var/workspaces")
    with pytest.raises(ValueError, match=r"Extra inputs are not permitted"):
        WorkspaceSettings(rooot="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="greater than 0"):
        WorkspaceSettings(git_timeout_seconds=0)
    with pytest.raises(ValidationError, match="max_disk_mb"):
        WorkspaceSettings(max_disk_mb=-1)
