"""Set-up for Discord tests: the desk over the simulator (tests/support/desk.py) with a real
CrewlineBot (commands and dynamic items registered, never connected) and fake Discord users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord

from bot.app import Runtime
from bot.desk import Desk
from bot.discord.client import CrewlineBot
from bot.discord.notify import DiscordSurface
from sim.core.app import RunningSim
from tests.support.desk import APPROVER, PEOPLE, desk_for
from tests.support.discord_fakes import FakeDiscord, FakeInteraction, FakeRole, FakeUser


def user(discord_id: int, *, approver: bool = True) -> FakeUser:
    name = PEOPLE.get(discord_id, ("stranger", 0))[0]
    return FakeUser(discord_id, name.title(), [FakeRole(APPROVER)] if approver else [])


async def new_bot(desk: Desk) -> CrewlineBot:
    """A fresh client, as after a restart: commands and dynamic items registered."""
    bot = CrewlineBot(desk.identities.settings, desk)
    await bot.setup_hook()
    return bot


@asynccontextmanager
async def bot_for(
    sim: RunningSim, base: Path, **discord_settings: Any
) -> AsyncIterator[tuple[CrewlineBot, Desk, Runtime]]:
    async with desk_for(sim, base, **discord_settings) as (desk, runtime):
        bot = await new_bot(desk)
        try:
            yield bot, desk, runtime
        finally:
            await bot.close()


async def invoke(bot: CrewlineBot, name: str, who: FakeUser, **options: Any) -> FakeInteraction:
    """Run the guild's slash command ``name`` as ``who`` with ``options``."""
    guild = discord.Object(bot.settings.guild_id or 0)
    command = bot.tree.get_command(name, guild=guild)
    assert isinstance(command, discord.app_commands.Command), f"/{name} is not registered"
    assert bot.tree.get_command(name) is None, f"/{name} must be guild-scoped, not global"
    interaction = FakeInteraction(bot, who)
    await command.callback(command.binding, interaction, **options)  # type: ignore[arg-type]
    return interaction


def surface_for(
    desk: Desk, world: FakeDiscord, connected: asyncio.Event | None = None
) -> DiscordSurface:
    """The Discord notifier over ``world``, sending as fast as the fakes allow."""
    surface = DiscordSurface(
        desk,
        desk.identities.settings,
        world.resolve,
        world.resolve,  # a user's DM channel, by the user's id
        connected=connected,
        min_interval=0,
        retry_seconds=0.01,
    )
    surface.start()
    return surface
