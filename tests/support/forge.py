"""Shared set-up for tests of crewline's GitLab layer against the simulator: a project
with the bot as Developer, and a gateway wired to real storage, guard and audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import gitlab

from forge.client import GitLabClient, RetryPolicy
from forge.gateway import Gateway
from forge.guard import Guard
from forge.settings import GitLabSettings
from sim.core.app import RunningSim
from storage import Storage
from workflow import Workflow, default_workflow

PROJECT = "demo/app"
BOT_TOKEN = "sim-bot-token"


def make_project(sim: RunningSim, path: str = PROJECT) -> int:
    """Create ``path`` as root with crewline-bot (Developer) and maintainer (Maintainer)."""
    root = gitlab.Gitlab(sim.base_url, private_token="sim-root-token")
    namespace, name = path.split("/")
    project = root.projects.create({"name": name, "path": name, "namespace_path": namespace})
    users = {u.username: u.id for u in root.users.list(get_all=True)}
    project.members.create({"user_id": users["crewline-bot"], "access_level": 30})
    project.members.create({"user_id": users["maintainer"], "access_level": 40})
    return int(project.id)


def admin(sim: RunningSim) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token="sim-root-token")


async def no_sleep(_: float) -> None:
    return None


@asynccontextmanager
async def gateway_for(
    sim: RunningSim,
    db_path: Path,
    *,
    workflow: Workflow | None = None,
    retry: RetryPolicy | None = None,
    sleep: object = None,
    who: str = "crewline-test",
    token: str = BOT_TOKEN,
) -> AsyncIterator[tuple[Gateway, Storage]]:
    storage = await Storage.open(db_path)
    settings = GitLabSettings(url=sim.base_url, threads=4)
    client = GitLabClient(
        settings,
        token,
        retry=retry or RetryPolicy(max_retries=3, budget_seconds=30, base_delay=0.01),
        **({"sleep": sleep} if sleep is not None else {}),  # type: ignore[arg-type]
    )
    gateway = Gateway(
        client,
        guard=Guard([BOT_TOKEN]),
        audit=storage.audit,
        workflow=workflow or default_workflow(),
        who=who,
    )
    try:
        yield gateway, storage
    finally:
        await client.close()
        await storage.close()
