"""What every Discord callback does the same way: find the desk, say who is asking,
acknowledge at once (Discord wants an answer within 3 seconds), then follow up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.desk import Desk
from bot.desk_base import DeskError
from bot.discord.render import CONTENT, NO_MENTIONS, plain
from bot.identity import Actor, NotAllowed

log = logging.getLogger(__name__)

FAILED = "Something went wrong on crewline's side; its log has the details."


@dataclass
class Answer:
    """What to follow up with: text (already safe), an embed, buttons."""

    content: str = ""
    embed: discord.Embed | None = None
    view: discord.ui.View | None = field(default=None)

    def kwargs(self) -> dict[str, Any]:
        sent: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if self.content:
            sent["content"] = self.content
        if self.embed is not None:
            sent["embed"] = self.embed
        if self.view is not None:
            sent["view"] = self.view
        return sent


def desk_of(interaction: discord.Interaction[Any]) -> Desk:
    desk = getattr(interaction.client, "desk", None)
    if not isinstance(desk, Desk):
        raise RuntimeError("this Discord client has no crewline desk attached")
    return desk


def actor_of(interaction: discord.Interaction[Any]) -> Actor:
    user = interaction.user
    roles = getattr(user, "roles", None) or []
    return Actor(user.id, user.display_name, frozenset(role.id for role in roles))


def said(text: str) -> str:
    """A desk message for Discord: it may quote titles and GitLab text, so it is escaped."""
    return plain(text, CONTENT - 100)


async def refuse(interaction: discord.Interaction[Any], text: str) -> None:
    """An immediate ephemeral answer (checks that need no GitLab call)."""
    await interaction.response.send_message(
        said(text), ephemeral=True, allowed_mentions=NO_MENTIONS
    )


async def deferred(
    interaction: discord.Interaction[Any],
    work: Callable[[], Awaitable[Answer]],
    *,
    ephemeral: bool = True,
) -> Answer | None:
    """Defer, run ``work``, follow up with its answer; a refusal or bad input is answered
    ephemerally with the reason, anything else with a short apology (details in the log)."""
    await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    try:
        answer = await work()
    except (NotAllowed, DeskError) as refused:
        await interaction.followup.send(
            said(str(refused)), ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return None
    except Exception:
        log.exception("discord interaction failed: user=%s", interaction.user.id)
        await interaction.followup.send(FAILED, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return None
    await interaction.followup.send(ephemeral=ephemeral, **answer.kwargs())
    return answer
