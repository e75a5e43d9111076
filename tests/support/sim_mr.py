"""Shared set-up for the simulator's merge-request tests: a project with real commits,
python-gitlab clients per role, and a recorder of the simulator's events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gitlab
from gitlab.v4.objects import Project

from sim.core.app import RunningSim
from sim.core.events import SimEvent

ROOT_TOKEN, BOT_TOKEN, MAINTAINER_TOKEN = "sim-root-token", "sim-bot-token", "sim-maintainer-token"
DEVELOPER, MAINTAINER = 30, 40


def client(sim: RunningSim, token: str) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token=token)


@dataclass
class Repo:
    """One project seen by each of the three seeded users."""

    sim: RunningSim
    path: str
    root: Project
    bot: Project
    maintainer: Project

    def commit(
        self,
        branch: str,
        files: dict[str, str],
        *,
        start_branch: str | None = None,
        message: str | None = None,
        as_project: Project | None = None,
    ) -> str:
        """Commit ``files`` (path -> content, created or updated) on ``branch``."""
        project = as_project or self.root
        existing = self._existing(project, branch if start_branch is None else start_branch, files)
        data: dict[str, Any] = {
            "branch": branch,
            "commit_message": message or f"change {', '.join(sorted(files))} on {branch}",
            "actions": [
                {
                    "action": "update" if path in existing else "create",
                    "file_path": path,
                    "content": content,
                }
                for path, content in files.items()
            ],
        }
        if start_branch is not None:
            data["start_branch"] = start_branch
        return str(project.commits.create(data).id)

    @staticmethod
    def _existing(project: Project, ref: str, files: dict[str, str]) -> set[str]:
        present = set()
        for path in files:
            try:
                project.files.get(path, ref=ref)
            except gitlab.exceptions.GitlabGetError:
                continue
            present.add(path)
        return present

    def branch_head(self, name: str) -> str:
        return str(self.root.branches.get(name).commit["id"])

    def feature(self, name: str, files: dict[str, str], **kwargs: Any) -> str:
        """A new branch from main with one commit; returns its head."""
        return self.commit(name, files, start_branch="main", **kwargs)


def make_repo(sim: RunningSim, path: str = "demo/app") -> Repo:
    """``path`` with a README on main; crewline-bot is Developer, maintainer Maintainer."""
    root = client(sim, ROOT_TOKEN)
    namespace, name = path.split("/")
    project = root.projects.create({"name": name, "path": name, "namespace_path": namespace})
    users = {u.username: u.id for u in root.users.list(get_all=True)}
    project.members.create({"user_id": users["crewline-bot"], "access_level": DEVELOPER})
    project.members.create({"user_id": users["maintainer"], "access_level": MAINTAINER})
    project.commits.create(
        {
            "branch": "main",
            "commit_message": "initial commit",
            "actions": [{"action": "create", "file_path": "README.md", "content": "hello\n"}],
        }
    )
    _protect(project, "main")
    return Repo(
        sim,
        path,
        project,
        client(sim, BOT_TOKEN).projects.get(path),
        client(sim, MAINTAINER_TOKEN).projects.get(path),
    )


def _protect(project: Project, branch: str) -> None:
    """Maintainers only push and merge ``branch``, as GitLab protects a default branch."""
    try:
        project.protectedbranches.create(
            {"name": branch, "push_access_level": MAINTAINER, "merge_access_level": MAINTAINER}
        )
    except gitlab.exceptions.GitlabCreateError as error:
        if error.response_code != 409:  # already protected by the simulator itself
            raise


@dataclass
class EventLog:
    """Every event of the given kinds the simulator emits, as the bus delivers them."""

    events: list[SimEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def record(self, event: SimEvent) -> None:
        with self._lock:
            self.events.append(event)

    def wait_for(self, match: Callable[[SimEvent], bool], timeout: float = 10.0) -> SimEvent:
        """The first recorded event ``match`` accepts, waiting for delivery if needed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [event for event in self.events if match(event)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event among {len(self.events)} recorded")
            time.sleep(0.02)

    def matching(self, match: Callable[[SimEvent], bool]) -> list[SimEvent]:
        with self._lock:
            return [event for event in self.events if match(event)]


def record_events(sim: RunningSim, *kinds: str) -> EventLog:
    assert sim.sim is not None
    log = EventLog()
    for kind in kinds:
        sim.sim.events.subscribe(kind, log.record)
    return log


def mr_action(action: str, iid: int) -> Callable[[SimEvent], bool]:
    def match(event: SimEvent) -> bool:
        attributes = event.payload.get("object_attributes", {})
        return attributes.get("action") == action and attributes.get("iid") == iid

    return match
