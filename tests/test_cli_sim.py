"""`crewline sim serve` as a user runs it: a real process, python-gitlab and git against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gitlab
import pytest

from tests.support.sim_pipelines import alive, poll


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "sim",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
            "--seed",
            "demo",
            "--tier",
            "free",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        assert "GitLab simulator ready at" in line, process.stderr.read() if process.stderr else ""
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def test_sim_serve_prints_its_url_and_serves_the_seeded_demo_project(
    served: str, tmp_path: Path
) -> None:
    root = gitlab.Gitlab(served, private_token="sim-root-token")
    assert "version" in root.version()[0] or root.version()[0] != "unknown"
    bot = gitlab.Gitlab(served, private_token="sim-bot-token")
    bot.auth()
    assert bot.user is not None and bot.user.username == "crewline-bot"
    project = bot.projects.get("demo/app")
    assert project.default_branch == "main"
    assert project.protectedbranches.get("main").name == "main"
    paths = {item["path"] for item in project.repository_tree(all=True, recursive=True)}
    assert ".gitlab-ci.yml" in paths

    # The bot (a Developer) clones over smart HTTP but may not push to the protected main.
    url = served.replace("http://", "http://oauth2:sim-bot-token@") + "/demo/app.git"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", url, str(checkout)], check=True, env=env)
    (checkout / "NOTES.md").write_text("hello\n")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "NOTES.md"], check=True)
    subprocess.run([*git, "commit", "-qm", "notes"], check=True)
    push = subprocess.run(
        [*git, "push", "origin", "HEAD:main"], capture_output=True, text=True, env=env
    )
    assert push.returncode != 0
    assert "protected branch" in push.stderr.lower() or "not allowed" in push.stderr.lower()


def test_sim_serve_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "sim",
                "serve",
                "--port",
                str(port),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


def test_sigterm_stops_the_simulator_and_the_ci_jobs_it_runs(tmp_path: Path) -> None:
    """A supervisor's (or a bench's) SIGTERM stops `crewline sim serve` as Ctrl-C does: a job
    still running, in a process group of its own, is killed, not left writing into a state
    directory its owner is removing."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "sim", "serve", "--port", str(port),
         "--state-dir", str(tmp_path / "state"), "--seed", "demo"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        assert "GitLab simulator ready at" in process.stdout.readline()
        pid_file = tmp_path / "job.pid"
        ci = f"job:\n  script:\n    - echo $$ > {pid_file}\n    - sleep 120\n"
        project = gitlab.Gitlab(
            f"http://127.0.0.1:{port}", private_token="sim-root-token"
        ).projects.get("demo/app")
        project.commits.create(
            {"branch": "long-job", "start_branch": "main", "commit_message": "a long job",
             "actions": [{"action": "update", "file_path": ".gitlab-ci.yml", "content": ci}]}
        )  # fmt: skip
        job = int(poll(lambda: pid_file.exists() and pid_file.read_text().strip(), 60, "the job"))
        assert alive(job)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        poll(lambda: not alive(job), 10, "the job to be killed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
