"""/audit and /learnings: answers from crewline's SQLite memory."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.cards import audit_embed, learnings_embed
from bot.discord.interact import Answer, actor_of, deferred, desk_of


class KnowledgeCog(commands.Cog):
    @app_commands.command(
        name="audit", description="Who did what to an issue, from the audit trail"
    )
    @app_commands.describe(issue="group/project#12, #12, or the issue's URL")
    async def audit(self, interaction: discord.Interaction[Any], issue: str) -> None:
        async def show() -> Answer:
            desk = desk_of(interaction)
            project, iid = desk.parse_ref(issue)
            entries = await desk.audit_trail(actor_of(interaction), project, iid)
            return Answer(embed=audit_embed(f"{project}#{iid}", entries))

        await deferred(interaction, show)

    @app_commands.command(name="learnings", description="Search what crewline learned")
    @app_commands.describe(query="Words to look for")
    async def learnings(self, interaction: discord.Interaction[Any], query: str) -> None:
        async def show() -> Answer:
            found = await desk_of(interaction).learnings(actor_of(interaction), query)
            return Answer(embed=learnings_embed(query, found))

        await deferred(interaction, show)
