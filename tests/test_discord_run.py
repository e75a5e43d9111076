"""Starting the Discord surface and syncing its commands, against a fake Discord REST API on
loopback (discord.py's real HTTP client): clear failures for a missing, malformed or refused
token, and an engine that keeps working while Discord's gateway is away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import SecretStr

from bot.cli import main
from bot.config import ConfigError, Secrets
from bot.discord.run import DIGEST_KEY, BothDesks, DiscordRuntime, discord_token, start_discord
from bot.serve import serve
from bot.settings import DiscordSettings
from roles.notify import Event, EventKind
from sim.core.app import RunningSim
from tests.support.desk import desk_for, discord_settings, new_issue, walk
from tests.support.discord_desk import new_bot, surface_for
from tests.support.discord_fakes import FakeDiscord
from tests.support.discord_http_fake import GOOD_TOKEN, discord_api
from tests.support.engine import configure, state_of

CONFIG = """
[gitlab]
url = "https://gitlab.example.com"

[[projects]]
path = "group/app"

[discord]
enabled = true
guild_id = 500
"""
WRONG_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"


def test_token_and_settings_are_checked_before_anything_starts() -> None:
    with pytest.raises(ConfigError) as missing:
        discord_token(Secrets(), DiscordSettings(enabled=True))
    assert missing.value.problems[0].startswith("CREWLINE_DISCORD_TOKEN is not set")
    assert [p.split(" ")[0] for p in missing.value.problems[1:]] == [
        "discord.guild_id",
        "discord.approvals_channel_id",
        "discord.status_channel_id",
    ]
    with pytest.raises(ConfigError, match="does not look like a bot token"):
        discord_token(Secrets(discord_token=SecretStr("1234567890")), discord_settings())
    assert (
        discord_token(Secrets(discord_token=SecretStr(f" {GOOD_TOKEN} ")), discord_settings())
        == GOOD_TOKEN
    )


async def test_run_fails_at_start_without_a_token(sim: RunningSim, tmp_path: Path) -> None:
    config = configure(sim, tmp_path, discord=discord_settings())
    with pytest.raises(ConfigError, match="CREWLINE_DISCORD_TOKEN is not set"):
        await serve(config, Secrets(gitlab_token=SecretStr("x")), webhooks=True)
    assert not (tmp_path / "crewline.sqlite3").exists()  # nothing was opened


def test_discord_sync_registers_the_guild_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "crewline.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with discord_api() as api:
        monkeypatch.setenv("CREWLINE_DISCORD_TOKEN", WRONG_TOKEN)
        assert main(["discord", "sync", "--config", str(path)]) == 2
        assert (
            "Discord refused CREWLINE_DISCORD_TOKEN (401 Unauthorized)" in capsys.readouterr().err
        )
        monkeypatch.setenv("CREWLINE_DISCORD_TOKEN", GOOD_TOKEN)
        assert main(["discord", "sync", "--config", str(path)]) == 0
        names = "audit, goal, learnings, pause, resume, retry, status, stuck"
        assert capsys.readouterr().out.strip() == f"synced 8 commands to guild 500: {names}"
        synced = {command["name"]: command for command in api.commands[500]}
        assert sorted(synced) == names.split(", ")
        assert synced["retry"]["default_member_permissions"] is not None
        assert synced["status"]["default_member_permissions"] is None


async def test_the_engine_keeps_working_while_the_gateway_is_away(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (_, runtime):
        with discord_api() as api:
            refused = Secrets(discord_token=SecretStr(WRONG_TOKEN))
            before = runtime.services.notifier
            with pytest.raises(ConfigError, match="Discord refused"):
                await start_discord(runtime, refused)
            assert runtime.services.notifier is before
            started = await start_discord(runtime, Secrets(discord_token=SecretStr(GOOD_TOKEN)))
            try:
                assert isinstance(runtime.services.desk, BothDesks)
                for _ in range(100):
                    if api.gateway_calls:
                        break
                    await asyncio.sleep(0.05)
                assert api.gateway_calls >= 1 and not started.bot.connected.is_set()
                issue = await new_issue(runtime)
                await walk(runtime, issue.iid, "pm-running", "blocked")
                blocked = Event(
                    EventKind.BLOCKED, issue.project, 1, "t", "why", "pm-running", "blocked"
                )
                # Queued, not sent: it returns though Discord never will (10 s: a loaded host).
                await asyncio.wait_for(runtime.services.notifier.notify(blocked), 10)
                assert started.surface.pending >= 2  # kept for when Discord is back
                assert await runtime.engine.tick() == 0 and await state_of(runtime, 1) == "blocked"
                assert not started.connection.done()
            finally:
                await started.close()


async def test_the_digest_job_posts_and_remembers_its_period(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        world = FakeDiscord()
        bot = await new_bot(desk)
        idle = asyncio.create_task(asyncio.sleep(3600))
        job = DiscordRuntime(bot, surface_for(desk, world), idle)
        scheduler = AsyncIOScheduler(timezone="UTC")
        job.schedule(scheduler, "0 9 * * *")
        trigger = scheduler.get_job("digest").trigger
        assert str(trigger.fields[5]) == "9" and str(trigger.fields[6]) == "0"  # hour, minute
        await new_issue(runtime, "Fresh")
        await job.digest()
        await job.surface.flush()
        [posted] = world.channel(700).messages
        assert posted.embeds[0].fields[0].name == "Moved (1)"
        assert await runtime.storage.settings.get(DIGEST_KEY) is not None
        await job.close()
        assert idle.cancelled()
