"""crewline notices when its own token could merge into the protected target by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from bot.config import Secrets
from bot.serve import warn_about_privileges
from forge.client import GitLabClient, RetryPolicy
from forge.gateway import Gateway
from forge.guard import Guard
from forge.privilege import merge_power
from forge.settings import GitLabSettings
from sim.core.app import RunningSim
from tests.support.engine import configure, runtime_for
from workflow import default_workflow

PROJECT = "demo/app"


@asynccontextmanager
async def gateway_as(sim: RunningSim, token: str) -> AsyncIterator[Gateway]:
    client = GitLabClient(GitLabSettings(url=sim.base_url), token, retry=RetryPolicy(max_retries=0))
    try:
        yield Gateway(client, guard=Guard(), audit=None, workflow=default_workflow(), who="t")
    finally:
        await client.close()


async def test_a_developer_token_on_a_protected_target_is_fine(demo_sim: RunningSim) -> None:
    async with gateway_as(demo_sim, "sim-bot-token") as gateway:
        assert await merge_power(gateway, PROJECT, "main") is None


async def test_a_maintainer_token_is_reported(demo_sim: RunningSim) -> None:
    async with gateway_as(demo_sim, "sim-maintainer-token") as gateway:
        warning = await merge_power(gateway, PROJECT, "main")
    assert warning is not None
    assert "@maintainer" in warning and "can merge into the protected `main`" in warning
    assert "CREWLINE_GITLAB_MERGE_TOKEN" in warning


async def test_an_unprotected_target_is_reported(demo_sim: RunningSim) -> None:
    async with gateway_as(demo_sim, "sim-bot-token") as gateway:
        warning = await merge_power(gateway, PROJECT, "release")
    assert warning is not None and "`release` of demo/app is not protected" in warning


async def test_serve_warns_loudly_at_start(demo_sim: RunningSim, tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    secrets = Secrets(gitlab_token=SecretStr("sim-maintainer-token"))
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path), secrets=secrets) as (rt, _):
        await warn_about_privileges(rt, console)
    assert "WARNING: @maintainer (crewline's token, access level 40) can merge" in (
        console.export_text()
    )
    quiet = Console(record=True, width=200)
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path / "b")) as (rt, _):
        await warn_about_privileges(rt, quiet)
    assert quiet.export_text() == ""
