"""Starting the Discord surface beside the engine (`crewline run`) and syncing its commands
(`crewline discord sync`).

A missing or refused token fails at start with what to do; once started, Discord being away
never stops the engine: the client reconnects by itself, and the status surface keeps what
it has to send until Discord answers again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import discord
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.app import Runtime
from bot.config import ConfigError, CrewlineConfig, Secrets
from bot.desk import Desk
from bot.discord.client import CrewlineBot, sync_commands
from bot.discord.digest import build_digest, digest_embed
from bot.discord.feed import DiscordFeed
from bot.discord.notify import DiscordSurface, stop_task
from bot.identity import Identities
from bot.settings import DiscordSettings
from roles.notify import Desk as NotifyDesk
from roles.notify import Fanout, GateRequest

log = logging.getLogger(__name__)

# A bot token is three base64url parts separated by dots (user id, timestamp, HMAC).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")
_RESET = "reset it in the Discord Developer Portal (your application > Bot > Reset Token)"
RECONNECT_SECONDS = 30.0
DIGEST_KEY = "discord:digest:last"
# What a command sync raises when Discord does not answer (the CLI reports it and exits).
SYNC_ERRORS: tuple[type[Exception], ...] = (OSError, aiohttp.ClientError, discord.HTTPException)


def discord_token(secrets: Secrets, settings: DiscordSettings, *, channels: bool = True) -> str:
    """The bot token, after checking the token and settings the Discord surface needs."""
    problems = []
    token = secrets.discord_token.get_secret_value().strip() if secrets.discord_token else ""
    if not token:
        problems.append(
            f"CREWLINE_DISCORD_TOKEN is not set: the Discord surface needs the bot's token "
            f"({_RESET}); to run without Discord, set discord.enabled = false"
        )
    elif not _TOKEN.match(token):
        problems.append(
            "CREWLINE_DISCORD_TOKEN does not look like a bot token (three parts separated by "
            f"dots): copy the Bot token, not the application id or client secret; {_RESET}"
        )
    required = ["guild_id"] + (["approvals_channel_id", "status_channel_id"] if channels else [])
    for name in required:
        if getattr(settings, name) is None:
            problems.append(f"discord.{name} is not set: right-click it in Discord > Copy ID")
    if problems:
        raise ConfigError("discord", problems)
    return token


async def login(bot: CrewlineBot, token: str) -> None:
    """Log in (this also runs setup_hook); a token Discord refuses is a ConfigError."""
    try:
        await bot.login(token)
    except discord.LoginFailure:
        raise ConfigError(
            "discord", [f"Discord refused CREWLINE_DISCORD_TOKEN (401 Unauthorized): {_RESET}"]
        ) from None


async def sync(settings: DiscordSettings, token: str, bot: CrewlineBot | None = None) -> list[str]:
    """Register the slash commands in the configured guild (`crewline discord sync`)."""
    bot = bot or CrewlineBot(settings)
    try:
        await login(bot, token)
        return await sync_commands(bot)
    finally:
        await bot.close()


class BothDesks:
    """Gate requests to the desk already set (e.g. --auto-approve-plans) and to Discord,
    which posts a card only while the issue still waits at the gate."""

    def __init__(self, first: NotifyDesk, discord: NotifyDesk) -> None:
        self.desks = (first, discord)

    async def request(self, gate: GateRequest) -> None:
        for desk in self.desks:
            await desk.request(gate)


@dataclass
class DiscordRuntime:
    bot: CrewlineBot
    surface: DiscordSurface
    connection: asyncio.Task[None]
    feed: DiscordFeed | None = None  # transitions and gates of every host, from GitLab

    def schedule(self, scheduler: AsyncIOScheduler, cron: str) -> None:
        """The daily digest, on the configured cron (host time zone)."""
        scheduler.add_job(
            self.digest,
            CronTrigger.from_crontab(cron),
            id="digest",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )

    async def digest(self) -> None:
        kv = self.surface.desk.services.storage.settings
        now = datetime.now(UTC)
        last = await kv.get(DIGEST_KEY)
        since = datetime.fromisoformat(last) if last else now - timedelta(days=1)
        try:
            summary = await build_digest(self.surface.desk, since)
        except Exception:
            log.exception("digest failed; the next one covers this period too")
            return
        await self.surface.post_digest(digest_embed(summary))
        await kv.set(DIGEST_KEY, now.isoformat())

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        await stop_task(self.connection)
        await self.surface.stop()
        await self.bot.close()


async def start_discord(runtime: Runtime, secrets: Secrets) -> DiscordRuntime:
    """Log in, then keep the gateway connected in the background; the engine's notifier
    and desk become the Discord surface (the console notifier keeps working beside it)."""
    config: CrewlineConfig = runtime.config
    token = discord_token(secrets, config.discord)
    identities = Identities(config.discord, runtime.services.gateway.member_access_level)
    desk = Desk(runtime, identities)
    bot = CrewlineBot(config.discord, desk)
    surface = DiscordSurface(
        desk, config.discord, _channel(bot), _user(bot), connected=bot.connected
    )
    try:
        await login(bot, token)
    except ConfigError:
        await bot.close()
        raise
    except (aiohttp.ClientError, OSError, discord.HTTPException) as error:
        log.warning("discord: cannot log in now (%s); retrying in the background", error)
    services = runtime.services
    services.notifier = Fanout(services.notifier, surface)
    services.desk = BothDesks(services.desk, surface)
    surface.start()
    feed = DiscordFeed(surface, config.schedule.poll_seconds)
    feed.start()
    connection = asyncio.create_task(_stay_connected(bot, token), name="discord gateway")
    return DiscordRuntime(bot, surface, connection, feed)


async def _stay_connected(bot: CrewlineBot, token: str) -> None:
    while True:
        try:
            if bot.user is None:
                await login(bot, token)
            await bot.connect(reconnect=True)  # retries outages itself, with backoff
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error("discord: connection stopped (%s); retrying in %ss", error, RECONNECT_SECONDS)
        bot.connected.clear()
        await asyncio.sleep(RECONNECT_SECONDS)


def _channel(bot: CrewlineBot) -> Any:
    async def resolve(channel_id: int) -> Any:
        return bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)

    return resolve


def _user(bot: CrewlineBot) -> Any:
    async def resolve(user_id: int) -> Any:
        return bot.get_user(user_id) or await bot.fetch_user(user_id)

    return resolve
