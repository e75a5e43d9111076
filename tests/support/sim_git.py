"""Helpers for the simulator's git tests: a project with the three seeded users, python-gitlab
clients per user, git over smart HTTP, and a recorder of push events."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import gitlab

from sim.core.app import RunningSim
from sim.core.base import DEVELOPER, MAINTAINER, create_project, user_for_token
from sim.core.events import SimEvent
from sim.git.protected_branches import protect

ROOT_TOKEN, BOT_TOKEN, MAINTAINER_TOKEN = "sim-root-token", "sim-bot-token", "sim-maintainer-token"


def client(sim: RunningSim, token: str = ROOT_TOKEN) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token=token)


def make_project(sim: RunningSim, path: str = "demo/app", *, protect_main: bool = True) -> int:
    """A project where crewline-bot is a Developer and maintainer a Maintainer; ``main`` holds
    one commit (README.md) and is protected (push and merge: Maintainers)."""
    assert sim.sim is not None
    state = sim.sim

    async def build() -> int:
        bot = await user_for_token(state, BOT_TOKEN)
        maintainer = await user_for_token(state, MAINTAINER_TOKEN)
        assert bot is not None and maintainer is not None
        members = {int(bot["id"]): DEVELOPER, int(maintainer["id"]): MAINTAINER}
        project_id = await create_project(state, path, members=members)
        if protect_main:
            await protect(state, project_id, "main")
        return project_id

    project_id = sim.call(build())
    assert isinstance(project_id, int)
    client(sim).projects.get(project_id).commits.create(
        {
            "branch": "main",
            "commit_message": "Initial commit",
            "actions": [{"action": "create", "file_path": "README.md", "content": "# app\n"}],
        }
    )
    return project_id


def clone_url(sim: RunningSim, token: str, path: str = "demo/app", user: str = "oauth2") -> str:
    host = sim.base_url.removeprefix("http://")
    return f"http://{user}:{token}@{host}/{path}.git"


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real git client with no user configuration and no credential prompts."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.invalid",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.invalid",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class PushRecorder:
    """Collects the simulator's ``push`` events; :meth:`settled` waits for pending ones."""

    def __init__(self, sim: RunningSim, kind: str = "push") -> None:
        assert sim.sim is not None
        self._sim = sim
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        sim.sim.events.subscribe(kind, self._record)

    async def _record(self, event: SimEvent) -> None:
        with self._lock:
            self._events.append(event.payload)

    def settled(self) -> list[dict[str, Any]]:
        assert self._sim.sim is not None
        self._sim.call(self._sim.sim.events.drain())
        with self._lock:
            return list(self._events)
