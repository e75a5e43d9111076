"""The Discord client: slash commands (a cog per area, guild-scoped), persistent buttons,
and the connection state the status surface waits on while Discord is away.

Commands are registered in :meth:`CrewlineBot.setup_hook` but sent to Discord only by
``crewline discord sync`` (:func:`sync_commands`): syncing at every start would spend
Discord's tight rate limit on command updates for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands

from bot.desk import Desk
from bot.discord.cogs.admin import AdminCog
from bot.discord.cogs.board import BoardCog
from bot.discord.cogs.goals import GoalsCog
from bot.discord.cogs.knowledge import KnowledgeCog
from bot.discord.render import NO_MENTIONS
from bot.discord.views import DYNAMIC_ITEMS
from bot.settings import DiscordSettings

log = logging.getLogger(__name__)


def intents() -> discord.Intents:
    """Slash commands and buttons arrive as interactions: no privileged intent is needed;
    the guilds intent keeps channels and threads in the cache."""
    return discord.Intents(guilds=True)


class CrewlineBot(commands.Bot):
    def __init__(self, settings: DiscordSettings, desk: Desk | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=NO_MENTIONS,
            help_command=None,
        )
        self.settings = settings
        self._desk = desk
        self.connected = asyncio.Event()  # set while the gateway session is up

    @property
    def desk(self) -> Desk:
        if self._desk is None:
            raise RuntimeError("the Discord client was started without a desk")
        return self._desk

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        if self.settings.guild_id is None:
            raise RuntimeError("discord.guild_id is not set: the slash commands need a server")
        guild = discord.Object(self.settings.guild_id)
        for cog in (GoalsCog(), BoardCog(), AdminCog(), KnowledgeCog()):
            await self.add_cog(cog, guild=guild)

    async def on_ready(self) -> None:
        log.info("discord: connected as %s", self.user)
        self.connected.set()

    async def on_resumed(self) -> None:
        self.connected.set()

    async def on_disconnect(self) -> None:
        log.warning("discord: gateway disconnected; messages wait until it reconnects")
        self.connected.clear()


async def sync_commands(bot: CrewlineBot) -> list[str]:
    """Send the slash commands to the configured guild; returns their names."""
    if bot.settings.guild_id is None:
        raise RuntimeError("discord.guild_id is not set")
    synced: list[Any] = await bot.tree.sync(guild=discord.Object(bot.settings.guild_id))
    return sorted(command.name for command in synced)
