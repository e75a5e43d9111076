"""/goal: a modal (title, description, acceptance criteria) that files the issue at the
workflow's entry state and answers with its link."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.desk import TITLE_LIMIT
from bot.desk_base import DeskError
from bot.discord.interact import Answer, actor_of, deferred, desk_of, refuse, said
from bot.discord.render import link
from bot.identity import NotAllowed


class GoalModal(discord.ui.Modal, title="File a goal"):
    goal_title: discord.ui.TextInput[GoalModal] = discord.ui.TextInput(
        label="Title", max_length=TITLE_LIMIT, custom_id="title"
    )
    description: discord.ui.TextInput[GoalModal] = discord.ui.TextInput(
        label="Description",
        style=discord.TextStyle.paragraph,
        max_length=4000,
        required=False,
        custom_id="description",
    )
    criteria: discord.ui.TextInput[GoalModal] = discord.ui.TextInput(
        label="Acceptance criteria",
        style=discord.TextStyle.paragraph,
        max_length=4000,
        required=False,
        custom_id="criteria",
    )

    def __init__(self, project: str) -> None:
        super().__init__(timeout=1800)
        self.project = project

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        async def file() -> Answer:
            reply = await desk_of(interaction).file_goal(
                actor_of(interaction),
                title=self.goal_title.value,
                description=self.description.value,
                criteria=self.criteria.value,
                project=self.project,
                request_id=f"discord:{interaction.id}",
            )
            shown = said(reply.message)
            return Answer(
                f"{shown}\n{link('Open it in GitLab', reply.url)}" if reply.url else shown
            )

        await deferred(interaction, file)


class GoalsCog(commands.Cog):
    @app_commands.command(name="goal", description="File a goal for the agents")
    @app_commands.describe(project="The GitLab project (needed when several are configured)")
    async def goal(self, interaction: discord.Interaction[Any], project: str | None = None) -> None:
        desk = desk_of(interaction)
        try:
            desk.identities.mapped(actor_of(interaction))
            path = desk.project(project)
        except (NotAllowed, DeskError) as refused:
            await refuse(interaction, str(refused))
            return
        await interaction.response.send_modal(GoalModal(path))
