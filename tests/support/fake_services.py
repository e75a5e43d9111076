"""``roles.context.Services`` over the in-memory GitLab fakes: for tests of a role's own
decisions (admission, dependencies, stuck work, plan bindings) without the simulator, the
engine or agent subprocesses. Real SQLite (cheap, in ``tmp_path``), real claims over the
fake tracker; no agents and no desk, which such tests do not reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from forge.claims import Claims
from forge.settings import ProjectSettings
from roles.context import Services
from roles.notify import EventLog
from roles.ports import IssueTracker, MergeRequests
from roles.settings import RolesSettings
from roles.workspace.settings import WorkspaceSettings
from roles.workspace.workspaces import Workspaces
from storage import Storage
from tests.support.fake_state import FakeGitLab
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT

WORKER = "fake-host"


@asynccontextmanager
async def fake_services(base: Path) -> AsyncIterator[tuple[Services, FakeTracker]]:
    """Services whose gateway is a :class:`FakeTracker` over project ``demo/app`` (crewline-bot
    a Developer, maintainer a Maintainer, one commit on main)."""
    state = FakeGitLab()
    state.add_project(PROJECT)
    tracker = FakeTracker(state)
    storage = await Storage.open(base / "crewline.sqlite3")
    events = EventLog()
    services = Services(
        gateway=tracker,
        storage=storage,
        claims=Claims(tracker, storage.leases, worker=WORKER, ttl_seconds=60),
        workflow=tracker.workflow,
        projects={PROJECT: ProjectSettings(path=PROJECT)},
        roles=RolesSettings(),
        agents={},
        workspaces=Workspaces(
            WorkspaceSettings(root=base / "workspaces"), storage.leases, WORKER, "unused"
        ),
        notifier=events,
        desk=events,
        worker=WORKER,
        runs_dir=base / "runs",
    )
    try:
        yield services, tracker
    finally:
        await storage.close()


def _fakes_implement_the_ports(state: FakeGitLab) -> tuple[IssueTracker, MergeRequests]:
    """Never called: mypy (``pyproject.toml``'s ``files``) checks that the fakes satisfy
    the ports the roles are typed against, so a port that grows a method fails the type
    check until the fakes have it too."""
    tracker = FakeTracker(state)
    return tracker, tracker.merges
