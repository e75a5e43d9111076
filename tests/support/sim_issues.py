"""Helpers for the simulator's issue-side tests: clients and a project with members."""

from __future__ import annotations

from typing import Any

import gitlab

from sim.core.app import RunningSim
from sim.core.base import DEVELOPER, MAINTAINER, create_project, user_for_token

ROOT_TOKEN = "sim-root-token"
BOT_TOKEN = "sim-bot-token"
MAINTAINER_TOKEN = "sim-maintainer-token"


def client(sim: RunningSim, token: str = BOT_TOKEN, **options: Any) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token=token, **options)


def user_id(sim: RunningSim, token: str) -> int:
    assert sim.sim is not None
    row: Any = sim.call(user_for_token(sim.sim, token))
    return int(row["id"])


def make_project(sim: RunningSim, path: str = "demo/app", **members: int) -> int:
    """A project where the bot is Developer and the maintainer Maintainer; ``members``
    maps extra tokens' usernames is not needed: pass user ids via ``extra``."""
    assert sim.sim is not None
    levels = {user_id(sim, BOT_TOKEN): DEVELOPER, user_id(sim, MAINTAINER_TOKEN): MAINTAINER}
    project_id: Any = sim.call(create_project(sim.sim, path, members=levels))
    return int(project_id)


def add_user(sim: RunningSim, username: str, project_id: int, level: int) -> str:
    """A new user with ``level`` on the project; returns its token."""
    from sim.core.base import create_user

    assert sim.sim is not None
    token = f"sim-{username}-token"
    new_id: Any = sim.call(create_user(sim.sim, username, token))
    sim.call(_add_member(sim, project_id, int(new_id), level))
    return token


async def _add_member(sim: RunningSim, project_id: int, user: int, level: int) -> None:
    assert sim.sim is not None
    async with sim.sim.store.write() as conn:
        await conn.execute(
            "INSERT OR REPLACE INTO members (project_id, user_id, access_level) VALUES (?, ?, ?)",
            (project_id, user, level),
        )
