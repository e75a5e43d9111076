"""Narrow fakes of what crewline touches in discord.py: an Interaction (response, followup,
user with roles, the message a button sits on) and Messageables (channels, threads, users).

Only Discord's gateway and HTTP are faked; everything behind them (the desk, GitLab through
the simulator, SQLite) is real. Every fake send and edit insists on
``allowed_mentions=AllowedMentions.none()``: a call that forgets it fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
from discord.components import _component_factory

from bot.discord.client import CrewlineBot

_ids = itertools.count(900_000_000_000)


def new_id() -> int:
    return next(_ids)


def _no_mentions(kwargs: dict[str, Any]) -> None:
    mentions = kwargs.get("allowed_mentions")
    assert isinstance(mentions, discord.AllowedMentions), f"no allowed_mentions in {kwargs}"
    assert mentions.to_dict() == {"parse": []}, f"mentions allowed: {mentions.to_dict()}"


@dataclass
class FakeRole:
    id: int


@dataclass
class FakeMessage:
    """A sent message; ``components`` are parsed back from the view's payload, as Discord
    would return them, so a later click can be dispatched from them."""

    id: int
    channel: Any
    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)
    components: list[Any] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    thread: FakeChannel | None = None
    flags: discord.MessageFlags = field(default_factory=discord.MessageFlags)

    def show(self, kwargs: dict[str, Any]) -> None:
        if "content" in kwargs:
            self.content = kwargs["content"] or ""
        if kwargs.get("embed") is not None:
            self.embeds = [kwargs["embed"]]
        if "view" in kwargs:
            view = kwargs["view"]
            payload = view.to_components() if view is not None else []
            self.components = [_component_factory(row) for row in payload]

    def as_seen(self) -> FakeMessage:
        """The message as a user's client still shows it (buttons included) while an edit
        is on its way: clicks on it race with the edit. Edits are shared with the original."""
        return FakeMessage(
            self.id,
            self.channel,
            self.content,
            list(self.embeds),
            list(self.components),
            self.edits,
        )

    @property
    def custom_ids(self) -> list[str]:
        return [child.custom_id for row in self.components for child in row.children]

    async def edit(self, **kwargs: Any) -> FakeMessage:
        _no_mentions(kwargs)
        self.channel.failing()
        self.edits.append(kwargs)
        self.show(kwargs)
        return self

    async def create_thread(self, *, name: str, **_: Any) -> FakeChannel:
        """As on Discord: the thread has the message's id, and a second one is refused."""
        self.channel.failing()
        assert len(name) <= 100, name
        if self.thread is not None:
            error = {"code": 160004, "message": "A thread has already been created"}
            raise discord.HTTPException(_Response(400), error)
        self.thread = self.channel.world.channel(self.id, name=name)
        return self.thread


class FakeChannel:
    """A text channel, thread or DM: ``send`` records messages; ``down`` makes every call
    fail as an unreachable Discord would."""

    def __init__(self, world: FakeDiscord, channel_id: int, name: str = "") -> None:
        self.world, self.id, self.name = world, channel_id, name
        self.messages: list[FakeMessage] = []

    def failing(self) -> None:
        if self.world.down:
            raise discord.DiscordServerError(_Response(503), "Discord is down")

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        """As Discord with ``enforce_nonce`` (discord.py sets it with every nonce): a send
        whose nonce was seen answers with the message posted then."""
        _no_mentions(kwargs)
        self.failing()
        if content is not None:
            assert len(content) <= 2000, len(content)
        nonce = kwargs.get("nonce")
        assert nonce is None or len(str(nonce)) <= 25, nonce
        if nonce is not None and nonce in self.world.nonces:
            return self.world.nonces[nonce]
        message = FakeMessage(new_id(), self)
        message.show({"content": content or "", **kwargs})
        self.messages.append(message)
        if nonce is not None:
            self.world.nonces[nonce] = message
        if self.world.lose_answers > 0:  # posted, but the answer never arrives
            self.world.lose_answers -= 1
            raise aiohttp.ServerDisconnectedError()
        return message

    def get_partial_message(self, message_id: int) -> FakeMessage | _Gone:
        for message in self.messages:
            if message.id == message_id:
                return message
        return _Gone(self)

    async def fetch_message(self, message_id: int) -> FakeMessage:
        self.failing()
        for message in self.messages:
            if message.id == message_id:
                return message
        raise discord.NotFound(_Response(404), "Unknown Message")


@dataclass
class _Gone:
    """A message someone deleted: editing it is a 404, as on Discord."""

    channel: FakeChannel

    async def edit(self, **_: Any) -> None:
        self.channel.failing()
        raise discord.NotFound(_Response(404), "Unknown Message")


@dataclass
class _Response:
    """Enough of an aiohttp response for discord.HTTPException."""

    status: int
    reason: str = "fake"


class FakeDiscord:
    """Every channel, thread and user crewline can reach, by id."""

    def __init__(self) -> None:
        self.channels: dict[int, FakeChannel] = {}
        self.down = False
        self.lose_answers = 0  # this many sends are posted but their answer is lost
        self.nonces: dict[str | int, FakeMessage] = {}  # every send's nonce (one author)
        self.resolved = 0  # calls that reached Discord (a disconnected client makes none)

    def channel(self, channel_id: int, name: str = "") -> FakeChannel:
        return self.channels.setdefault(channel_id, FakeChannel(self, channel_id, name))

    async def resolve(self, channel_id: int) -> FakeChannel:
        self.resolved += 1
        if self.down:
            raise discord.DiscordServerError(_Response(503), "Discord is down")
        return self.channel(channel_id)


@dataclass
class FakeUser:
    id: int
    display_name: str
    roles: list[FakeRole] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.display_name


class FakeResponse:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def is_done(self) -> bool:
        return bool(self.calls)

    def _first(self, kind: str, kwargs: dict[str, Any]) -> None:
        assert not self.calls, f"a second response ({kind}) after {self.calls[0][0]}"
        self.calls.append((kind, kwargs))

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        self._first("defer", {"ephemeral": ephemeral, "thinking": thinking})

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        _no_mentions(kwargs)
        self._first("message", {"content": content, **kwargs})

    async def send_modal(self, modal: discord.ui.Modal) -> None:
        self._first("modal", {"modal": modal})

    @property
    def kind(self) -> str:
        return self.calls[0][0] if self.calls else ""


class FakeFollowup:
    def __init__(self, response: FakeResponse, world: FakeDiscord) -> None:
        self.response = response
        self.channel = world.channel(new_id(), "followups")
        self.sent: list[dict[str, Any]] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        assert self.response.kind == "defer", "a followup needs the interaction deferred first"
        # As on Discord: the first followup replaces the deferred "thinking" message and keeps
        # its visibility; later followups are new messages with their own.
        private = (
            self.response.calls[0][1]["ephemeral"] if not self.sent else kwargs.get("ephemeral")
        )
        self.sent.append({"content": content, **kwargs, "private": bool(private)})
        return await self.channel.send(content, **kwargs)

    @property
    def message(self) -> FakeMessage:
        """The last followup as Discord shows it (its buttons can be clicked)."""
        return self.channel.messages[-1]

    @property
    def text(self) -> str:
        return "\n".join(str(sent.get("content") or "") for sent in self.sent)


class FakeInteraction:
    def __init__(
        self,
        client: CrewlineBot,
        user: FakeUser,
        *,
        message: FakeMessage | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.id = new_id()
        self.client = client
        self.user = user
        self.message = message
        self.data = data or {}
        self.guild_id = client.settings.guild_id
        self.response = FakeResponse()
        self.followup = FakeFollowup(self.response, FakeDiscord())

    def retried(self) -> FakeInteraction:
        """The same interaction delivered again (same id), answered afresh."""
        repeat = FakeInteraction(self.client, self.user, message=self.message, data=self.data)
        repeat.id = self.id
        return repeat

    @property
    def modal(self) -> Any:
        kind, kwargs = self.response.calls[0]
        assert kind == "modal", f"expected a modal, got {kind}: {kwargs}"
        return kwargs["modal"]

    @property
    def refused(self) -> str:
        """The ephemeral answer given at once (no defer), or the deferred one."""
        kind, kwargs = self.response.calls[0]
        if kind == "message":
            assert kwargs.get("ephemeral") is True
            return str(kwargs["content"])
        assert self.followup.sent and self.followup.sent[-1]["private"], "answered in public"
        return self.followup.text


async def submit(
    modal: discord.ui.Modal,
    opener: FakeInteraction,
    *,
    delivery: FakeInteraction | None = None,
    **values: str,
) -> FakeInteraction:
    """Submit the modal ``opener`` showed, with ``values`` by custom id, in the payload shape
    Discord sends; the submission is a new interaction (or ``delivery``, e.g. a retry)."""
    interaction = delivery or FakeInteraction(opener.client, opener.user, message=opener.message)
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": custom_id, "value": value}]}
        for custom_id, value in values.items()
    ]
    modal._refresh(interaction, rows, {})  # type: ignore[arg-type]
    await modal.on_submit(interaction)  # type: ignore[arg-type]
    return interaction


async def click(
    bot: CrewlineBot, message: FakeMessage, custom_id: str, user: FakeUser
) -> FakeInteraction:
    """Click a button of ``message`` the way discord.py dispatches it: through the client's
    view store, which rebuilds the DynamicItem from its custom id."""
    interaction = FakeInteraction(bot, user, message=message, data={"custom_id": custom_id})
    store = bot._connection._view_store
    store.dispatch_view(discord.ComponentType.button.value, custom_id, interaction)  # type: ignore[arg-type]
    pending = list(store._ViewStore__tasks)
    assert pending, f"no dynamic item matched {custom_id}"
    await asyncio.gather(*pending)
    assert interaction.response.calls, f"the click on {custom_id} was not handled"
    return interaction
