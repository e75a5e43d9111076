"""/retry, /pause and /resume. ``default_permissions`` only hides the commands from most
members; the desk checks every caller itself, since server admins can change that hint.
Answers are private like every command's; the status channel and /audit show the effect."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.interact import Answer, actor_of, deferred, desk_of, said


class AdminCog(commands.Cog):
    @app_commands.command(
        name="retry", description="Send a blocked or failed issue back to its stage"
    )
    @app_commands.describe(issue="group/project#12, #12, or the issue's URL")
    @app_commands.default_permissions(manage_messages=True)
    async def retry(self, interaction: discord.Interaction[Any], issue: str) -> None:
        async def act() -> Answer:
            desk = desk_of(interaction)
            project, iid = desk.parse_ref(issue)
            return Answer(said((await desk.retry(actor_of(interaction), project, iid)).message))

        await deferred(interaction, act)

    @app_commands.command(
        name="pause", description="Stop claiming new work (running work finishes)"
    )
    @app_commands.describe(project="Only this project (default: every project)")
    @app_commands.default_permissions(manage_messages=True)
    async def pause(
        self, interaction: discord.Interaction[Any], project: str | None = None
    ) -> None:
        async def act() -> Answer:
            reply = await desk_of(interaction).pause(actor_of(interaction), project)
            return Answer(said(reply.message))

        await deferred(interaction, act)

    @app_commands.command(name="resume", description="Claim new work again")
    @app_commands.describe(project="Only this project (default: every project)")
    @app_commands.default_permissions(manage_messages=True)
    async def resume(
        self, interaction: discord.Interaction[Any], project: str | None = None
    ) -> None:
        async def act() -> Answer:
            reply = await desk_of(interaction).resume(actor_of(interaction), project)
            return Answer(said(reply.message))

        await deferred(interaction, act)
