"""/status and /stuck: the board as an embed, and what needs a human (with buttons)."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.cards import board_embed, stuck_embed
from bot.discord.interact import Answer, actor_of, deferred, desk_of
from bot.discord.views import stuck_view


class BoardCog(commands.Cog):
    @app_commands.command(name="status", description="The board: what is where, and why")
    @app_commands.describe(project="Only this project")
    async def status(
        self, interaction: discord.Interaction[Any], project: str | None = None
    ) -> None:
        async def show() -> Answer:
            desk = desk_of(interaction)
            path = desk.project(project) if project else None
            return Answer(embed=board_embed(await desk.board(actor_of(interaction), path), path))

        await deferred(interaction, show)

    @app_commands.command(name="stuck", description="Blocked, failed, waiting and stalled work")
    async def stuck(self, interaction: discord.Interaction[Any]) -> None:
        async def show() -> Answer:
            items = await desk_of(interaction).stuck(actor_of(interaction))
            return Answer(embed=stuck_embed(items), view=stuck_view(items))

        await deferred(interaction, show)
