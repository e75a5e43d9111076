"""Persistent buttons and their modals: approval cards, the stuck list, agents' questions.

Buttons are :class:`discord.ui.DynamicItem`: everything a click needs is in its custom id
(project key, issue, gate, the revision being decided), so a button keeps working after a
restart and on another process, with no view registered per message. The desk checks
whether the click is still valid (stale revision, already decided, not allowed) and the
answer to such a click is ephemeral and changes nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, Self, cast

import discord

from bot.desk import Desk, Reply
from bot.desk_base import project_key
from bot.desk_work import StuckItem
from bot.discord.cards import decided_card, undecided_card
from bot.discord.interact import Answer, actor_of, deferred, desk_of, refuse, said
from bot.discord.render import MODAL_TITLE, NO_MENTIONS, cut
from bot.identity import Actor, NotAllowed
from workflow import Gate

Action = Literal["retry", "requeue"]
Button = discord.ui.Button[discord.ui.View]


async def _who(interaction: discord.Interaction[Any]) -> str:
    actor = actor_of(interaction)
    gitlab = desk_of(interaction).identities.gitlab_user(actor)
    return f"@{gitlab} ({actor.name} on Discord)" if gitlab else actor.name


async def _mark_decided(
    interaction: discord.Interaction[Any], card: discord.Message | None, reply: Reply
) -> None:
    if card is None or not (reply.changed or reply.pending):
        return
    shown = card.embeds[0] if card.embeds else None
    who, now = await _who(interaction), datetime.now(UTC)
    if reply.pending:  # the reason on the card; the buttons stay for a later approval
        embed = undecided_card(shown, reply, who, now)
        await card.edit(embed=embed, allowed_mentions=NO_MENTIONS)
        return
    embed = decided_card(shown, reply, who, now)
    await card.edit(embed=embed, view=None, allowed_mentions=NO_MENTIONS)


class _FromCustomId:
    """The buttons here are rebuilt from their custom id alone: one ``from_custom_id`` serves
    them all, and each says in ``from_match`` how its id's named groups become its arguments."""

    @classmethod
    def from_match(cls, match: re.Match[str]) -> Self:
        raise NotImplementedError

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls.from_match(match)


class GateButton(
    _FromCustomId,
    discord.ui.DynamicItem[Button],
    template=r"cl:g:(?P<key>[0-9a-f]{10}):(?P<iid>[0-9]+):(?P<gate>plan|merge):"
    r"(?P<rev>[0-9A-Za-z]{1,40}):(?P<act>[ar])",
):
    """Approve, or Request changes (a modal for the feedback), for one revision at a gate."""

    def __init__(self, key: str, iid: int, gate: Gate, revision: str, approve: bool) -> None:
        self.key, self.iid, self.gate, self.revision, self.approve = (
            key,
            iid,
            gate,
            revision,
            approve,
        )
        super().__init__(
            discord.ui.Button(
                label="Approve" if approve else "Request changes",
                style=discord.ButtonStyle.success if approve else discord.ButtonStyle.secondary,
                custom_id=f"cl:g:{key}:{iid}:{gate}:{revision}:{'a' if approve else 'r'}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str]) -> GateButton:
        gate = cast(Gate, match["gate"])
        return cls(match["key"], int(match["iid"]), gate, match["rev"], match["act"] == "a")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        card = interaction.message
        if not self.approve:
            await _open_modal(interaction, FeedbackModal(self, card))
            return

        async def approve() -> Answer:
            desk = desk_of(interaction)
            project = desk.project_for_key(self.key)
            reply = await desk.decide(
                actor_of(interaction), project, self.iid, self.gate, self.revision, approve=True
            )
            await _mark_decided(interaction, card, reply)
            return Answer(said(reply.message))

        await deferred(interaction, approve)


async def _open_modal(interaction: discord.Interaction[Any], modal: discord.ui.Modal) -> None:
    """Show ``modal`` (it must be the first answer, so only checks needing no API call)."""
    desk, actor = desk_of(interaction), actor_of(interaction)
    try:
        desk.identities.mapped(actor)
    except NotAllowed as refused:
        await refuse(interaction, str(refused))
        return
    if isinstance(modal, FeedbackModal) and not desk.identities.has_approver_role(actor):
        await refuse(interaction, f"{actor.name} has none of the approver roles")
        return
    await interaction.response.send_modal(modal)


class _TextModal(discord.ui.Modal):
    """A modal of one paragraph of text; :meth:`submit` acts on it once the interaction is
    deferred (see :func:`deferred`)."""

    LABEL: str
    FIELD: str  # the input's custom id
    TIMEOUT: float

    def __init__(self, title: str, custom_id: str, key: str) -> None:
        super().__init__(title=cut(title, MODAL_TITLE), custom_id=custom_id, timeout=self.TIMEOUT)
        self.key = key
        self.text: discord.ui.TextInput[_TextModal] = discord.ui.TextInput(
            label=self.LABEL,
            style=discord.TextStyle.paragraph,
            max_length=4000,
            custom_id=self.FIELD,
        )
        self.add_item(self.text)

    def target(self, interaction: discord.Interaction[Any]) -> tuple[Desk, Actor, str]:
        """The desk, who submitted, and the project the modal is about."""
        desk = desk_of(interaction)
        return desk, actor_of(interaction), desk.project_for_key(self.key)

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        await deferred(interaction, lambda: self.submit(interaction))

    async def submit(self, interaction: discord.Interaction[Any]) -> Answer:
        raise NotImplementedError


class FeedbackModal(_TextModal):
    LABEL, FIELD, TIMEOUT = "What should change?", "feedback", 900

    def __init__(self, button: GateButton, card: discord.Message | None) -> None:
        custom_id = f"cl:fb:{button.key}:{button.iid}:{button.gate}:{button.revision}"
        super().__init__(f"Request changes on #{button.iid}", custom_id, button.key)
        self.button, self.card = button, card

    async def submit(self, interaction: discord.Interaction[Any]) -> Answer:
        desk, actor, project = self.target(interaction)
        gate = self.button
        reply = await desk.decide(
            actor,
            project,
            gate.iid,
            gate.gate,
            gate.revision,
            approve=False,
            feedback=self.text.value,
        )
        await _mark_decided(interaction, self.card, reply)
        return Answer(said(reply.message))


def gate_view(project: str, iid: int, gate: Gate, revision: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    key = project_key(project)
    view.add_item(GateButton(key, iid, gate, revision, approve=True))
    view.add_item(GateButton(key, iid, gate, revision, approve=False))
    return view


class StuckButton(
    _FromCustomId,
    discord.ui.DynamicItem[Button],
    template=r"cl:s:(?P<key>[0-9a-f]{10}):(?P<iid>[0-9]+):(?P<act>retry|requeue)",
):
    def __init__(self, key: str, iid: int, action: Action) -> None:
        self.key, self.iid, self.action = key, iid, action
        super().__init__(
            discord.ui.Button(
                label=f"{'Retry' if action == 'retry' else 'Re-queue'} #{iid}",
                style=discord.ButtonStyle.primary,
                custom_id=f"cl:s:{key}:{iid}:{action}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str]) -> StuckButton:
        return cls(match["key"], int(match["iid"]), cast(Action, match["act"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async def act() -> Answer:
            desk = desk_of(interaction)
            project, actor = desk.project_for_key(self.key), actor_of(interaction)
            operation = desk.retry if self.action == "retry" else desk.requeue
            return Answer(said((await operation(actor, project, self.iid)).message))

        await deferred(interaction, act)


def stuck_view(items: list[StuckItem]) -> discord.ui.View | None:
    actionable = [item for item in items if item.action in ("retry", "requeue")][:25]
    if not actionable:
        return None
    view = discord.ui.View(timeout=None)
    for item in actionable:
        view.add_item(StuckButton(project_key(item.project), item.iid, cast(Action, item.action)))
    return view


class AnswerButton(
    _FromCustomId,
    discord.ui.DynamicItem[Button],
    template=r"cl:q:(?P<key>[0-9a-f]{10}):(?P<iid>[0-9]+):(?P<note>[0-9]+)",
):
    """Answer an agent's question (the note ``note``) in a modal."""

    def __init__(self, key: str, iid: int, note_id: int) -> None:
        self.key, self.iid, self.note_id = key, iid, note_id
        super().__init__(
            discord.ui.Button(
                label="Answer",
                style=discord.ButtonStyle.primary,
                custom_id=f"cl:q:{key}:{iid}:{note_id}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str]) -> AnswerButton:
        return cls(match["key"], int(match["iid"]), int(match["note"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _open_modal(interaction, AnswerModal(self, interaction.message))


class AnswerModal(_TextModal):
    LABEL, FIELD, TIMEOUT = "Your answer", "answer", 1800

    def __init__(self, button: AnswerButton, message: discord.Message | None) -> None:
        custom_id = f"cl:qa:{button.key}:{button.iid}:{button.note_id}"
        super().__init__(f"Answer the question on #{button.iid}", custom_id, button.key)
        self.button, self.message = button, message

    async def submit(self, interaction: discord.Interaction[Any]) -> Answer:
        desk, actor, project = self.target(interaction)
        question = self.button
        reply = await desk.answer(actor, project, question.iid, question.note_id, self.text.value)
        if reply.changed and self.message is not None:
            answered = f"{self.message.content}\n\n*Answered by {said(await _who(interaction))}.*"
            await self.message.edit(
                content=cut(answered, 2000), view=None, allowed_mentions=NO_MENTIONS
            )
        return Answer(said(reply.message))


def question_view(project: str, iid: int, note_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AnswerButton(project_key(project), iid, note_id))
    return view


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    GateButton,
    StuckButton,
    AnswerButton,
)
