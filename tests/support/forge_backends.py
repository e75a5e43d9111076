"""The two backends of the GitLab contract suite (``tests/contract/test_*_contract.py``): the
in-memory fake (``tests/support/fake_tracker.py``) and the real ``forge.gateway.Gateway``
against the simulator over HTTP. Each gives the tracker crewline uses (as ``crewline-bot``)
and the few things a test does as someone else: a human's comment, a blocking link, a push,
an approval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gitlab

from forge.ports import IssueTracker, Noteable
from sim.core.app import RunningSim
from tests.support.fake_state import FakeGitLab
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT, admin, gateway_for, make_project

OTHER = "maintainer"  # a human with a token in the simulator; no crewline user


class World(Protocol):
    """What a test does outside crewline's own calls."""

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int: ...

    def block(self, iid: int, blocker: int) -> None: ...

    def push(self, branch: str) -> str: ...

    def approve(self, username: str, mr_iid: int) -> None: ...


@dataclass
class Backend:
    name: str
    tracker: IssueTracker
    world: World


class FakeWorld:
    def __init__(self, tracker: FakeTracker) -> None:
        self.tracker = tracker

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int:
        return self.tracker.note_by(username, PROJECT, iid, body, on=on)

    def block(self, iid: int, blocker: int) -> None:
        self.tracker.state.link_blocked(PROJECT, iid, blocker)

    def push(self, branch: str) -> str:
        return self.tracker.merges.push(PROJECT, branch)

    def approve(self, username: str, mr_iid: int) -> None:
        self.tracker.merges.approve(PROJECT, mr_iid, username)


class SimWorld:
    def __init__(self, sim: RunningSim) -> None:
        self.sim = sim
        self.project = admin(sim).projects.get(PROJECT)
        self.pushes = 0

    def new_file(self) -> str:
        """A path no earlier push created: each push is one new commit."""
        self.pushes += 1
        return f"change-{self.pushes}.txt"

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int:
        project = self.maintainer(username).projects.get(PROJECT, lazy=True)
        noteable = (project.issues if on == "issue" else project.mergerequests).get(iid, lazy=True)
        return int(noteable.notes.create({"body": body}).id)

    def maintainer(self, username: str) -> gitlab.Gitlab:
        assert username == OTHER, "the simulator's other user with a token is the maintainer"
        return gitlab.Gitlab(self.sim.base_url, private_token=self.sim.config.maintainer_token)

    def approve(self, username: str, mr_iid: int) -> None:
        self.maintainer(username).projects.get(PROJECT, lazy=True).mergerequests.get(
            mr_iid, lazy=True
        ).approve()

    def block(self, iid: int, blocker: int) -> None:
        links = self.project.issues.get(iid, lazy=True).links
        links.create(
            {
                "target_project_id": PROJECT,
                "target_issue_iid": blocker,
                "link_type": "is_blocked_by",
            }
        )

    def push(self, branch: str) -> str:
        commit = self.project.commits.create(
            {
                "branch": branch,
                "commit_message": "a change",
                "actions": [{"action": "create", "file_path": self.new_file(), "content": "x\n"}],
            }
        )
        return str(commit.id)


def fake_backend(*, premium: bool = True) -> Backend:
    """The fake; ``premium=False``: GitLab Free, where scoped labels are not exclusive."""
    state = FakeGitLab(premium=premium)
    state.add_project(PROJECT)
    tracker = FakeTracker(state)
    return Backend("fake", tracker, FakeWorld(tracker))


@asynccontextmanager
async def sim_backend(sim: RunningSim, db_path: Path) -> AsyncIterator[Backend]:
    """The real gateway over the simulator, in a project like the fake's: crewline-bot a
    Developer, maintainer a Maintainer, one commit on main."""
    make_project(sim)
    admin(sim).projects.get(PROJECT).commits.create(
        {
            "branch": "main",
            "commit_message": "init",
            "actions": [{"action": "create", "file_path": "a.txt", "content": "a\n"}],
        }
    )
    async with gateway_for(sim, db_path) as (gateway, _):
        yield Backend("sim", gateway, SimWorld(sim))
