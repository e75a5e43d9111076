"""The ``crewline`` command line as a subprocess for the tests: a configuration on the
simulator, one-shot runs, a host in the background stopped by a signal, and the states of issues
read from GitLab."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.core.app import RunningSim
from tests.support.engine import PROJECT, root
from tests.test_cli import crewline
from workflow import WorkflowSettings

WORKER = "cli-host"


TOKEN_ENV = {"CREWLINE_GITLAB_TOKEN": "sim-bot-token"}


HOOK_SECRET = "a-webhook-secret-for-the-tests"


WORKFLOW = WorkflowSettings().build()


CONFIG = """\
worker_id = "{worker}"
runs_dir = "runs"

[gitlab]
url = "{url}"
max_retries = 2
retry_budget_seconds = 10

[[projects]]
path = "demo/app"
validation = ["python3 -m unittest discover -s tests -t ."]

[storage]
path = "state/crewline.sqlite3"

[workspaces]
root = "workspaces"

[agents.demo]
kind = "demo"
timeout_seconds = 60
{extra_agents}
[roles]
agent = "{agent}"

[roles.review]
enabled = false  # the goals rest at review-ready, where these tests stop

[schedule]
poll_seconds = {poll}
janitor_seconds = 1

[webhook]
enabled = {webhook}
port = 0
"""


def write_config(
    path: Path,
    sim: RunningSim,
    *,
    poll: float = 1,
    webhook: bool = False,
    agent: str = "demo",
    extra_agents: str = "",
) -> Path:
    path.write_text(
        CONFIG.format(
            worker=WORKER,
            url=sim.base_url,
            agent=agent,
            extra_agents=extra_agents,
            poll=poll,
            webhook=str(webhook).lower(),
        ),
        encoding="utf-8",
    )
    return path


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """A command that must succeed; its standard output."""
    result = crewline(*args, "--config", str(config), env=TOKEN_ENV if env is None else env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Background:
    """`crewline run` or `worker` in the background; its output collected line by line."""

    def __init__(self, config: Path, *args: str, env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**base, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **env},
        )
        self.lines: list[str] = []
        self.ended = False  # its output is read to the end
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := re.search(pattern, line))]
            return bool(found) or self.ended

        with self._changed:
            self._changed.wait_for(seen, timeout)
        assert found, f"no line matching {pattern!r} in:\n{self.output}"
        return found[0]

    def interrupt(self, timeout: float = 10, how: signal.Signals = signal.SIGINT) -> int:
        """Ctrl-C, as a person at the terminal would (or ``how``, as a supervisor would);
        the exit code."""
        self.process.send_signal(how)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"crewline did not stop within {timeout} s of {how.name}:\n{self.output}"
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def background(config: Path, *args: str, env: dict[str, str]) -> Iterator[Background]:
    running = Background(config, *args, env=env)
    try:
        yield running
    finally:
        running.kill()


def state_of(sim: RunningSim, iid: int) -> str | None:
    labels = root(sim).projects.get(PROJECT).issues.get(iid).labels
    state = WORKFLOW.state_for_label(next((x for x in labels if WORKFLOW.in_scope(x)), ""))
    return state.name if state else None


def wait_for_state(
    sim: RunningSim, iid: int, want: str, process: Background, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while (state := state_of(sim, iid)) != want:
        assert process.process.poll() is None, f"crewline exited:\n{process.output}"
        assert time.monotonic() < deadline, f"#{iid} is at {state}, not {want}:\n{process.output}"
        time.sleep(0.2)


def file_by_hand(sim: RunningSim, title: str, description: str, state: str = "pm-ready") -> int:
    """A goal filed in GitLab by a person (root), as crewline's users do."""
    issue = (
        root(sim)
        .projects.get(PROJECT)
        .issues.create(
            {"title": title, "description": description, "labels": WORKFLOW.state(state).label}
        )
    )
    return int(issue.iid)


def ends_cleanly(process: Background, how: signal.Signals = signal.SIGINT) -> None:
    started = time.monotonic()
    code = process.interrupt(how=how)
    assert code == 0, process.output
    assert time.monotonic() - started < 10
    process.wait_for_line(rf"crewline {WORKER}: stopped")
