"""The engine's notifier and desk on Discord: a status message per issue, edited in place,
with a thread for the details; approval cards; agents' questions with an Answer button;
terminal events told to the goal's filer; the daily digest.

The engine never waits for Discord: :meth:`notify` and :meth:`request` only queue work, in
SQLite (the outbox, ``storage/outbox.py``), so a restart sends what was left. One sender task
drains it, one Discord call at a time, ``min_interval`` apart, so a burst of transitions never
meets Discord's rate limits: an issue's status update waits in the outbox at most once (a
later transition replaces it, and the edit shows the newest state). While the gateway is
disconnected, or a call fails because Discord is away, the job stays queued and is sent when
Discord answers again. Where each issue's message and thread live, and which cards were
posted, is kept in SQLite too: edits continue after a restart, a gate gets one card per
revision, and a card whose gate was decided (here, in GitLab, or by another host) is edited
to say so and loses its buttons. Transitions made by other hosts reach :meth:`notify` through
``bot/discord/feed.py``.

A job is deleted only after it was sent, so it can be sent twice: when Discord posted a
message but its answer was lost (the job is kept and tried again), or when the process died
between the send and the delete. Every message a job sends carries a nonce made of the job's
row id: discord.py sends it with ``enforce_nonce``, and Discord answers a second send with the
same nonce (within a few minutes) with the message it already posted instead of a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord

from bot.desk import Desk
from bot.discord import jobs
from bot.discord.cards import IssueStatus, closed_card, gate_card, status_embed
from bot.discord.render import (
    CONTENT,
    NO_MENTIONS,
    THREAD_NAME,
    block,
    cut,
    link,
    plain,
    strip_details,
)
from bot.discord.views import gate_view, question_view
from bot.settings import DiscordSettings
from forge import metrics
from roles.notify import Event, EventKind, GateRequest
from storage import Outgoing, PostedCard
from workflow import StateKind, read_state

log = logging.getLogger(__name__)

Resolver = Callable[[int], Awaitable[Any]]  # a channel, thread or user id -> a Messageable
TERMINAL_KINDS = (EventKind.BLOCKED, EventKind.FAILED, EventKind.BUDGET)
# Discord or the network is away: keep the job and try again later.
TRANSIENT: tuple[type[BaseException], ...] = (
    discord.DiscordServerError,
    discord.RateLimited,
    discord.ConnectionClosed,
    discord.GatewayNotFound,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)
# Discord's answer to a second thread for one message: a retried status job whose first
# attempt created the thread before its answer was lost.
THREAD_EXISTS = 160004


class DiscordSurface:
    def __init__(
        self,
        desk: Desk,
        settings: DiscordSettings,
        channel: Resolver,
        user: Resolver,
        *,
        connected: asyncio.Event | None = None,
        min_interval: float = 1.0,
        retry_seconds: float = 5.0,
    ) -> None:
        self.desk = desk
        self.settings = settings
        self._channel, self._user = channel, user
        self.connected = connected or asyncio.Event()
        if connected is None:
            self.connected.set()
        self.min_interval, self.retry_seconds = min_interval, retry_seconds
        storage = desk.services.storage
        self.outbox, self.cards, self.kv = storage.outbox, storage.cards, storage.settings
        self._pending = 0  # rows in the outbox, as of the last write (the gauge reads it)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ the engine's side

    async def known_state(self, ref: str) -> str | None:
        """The state the status channel was last told of (by this host's engine or by
        :mod:`bot.discord.feed` from GitLab)."""
        return await self.kv.get(_state_key(ref))

    async def notify(self, event: Event) -> None:
        wf = self.desk.services.workflow
        ref = event.ref
        known = await self.known_state(ref)
        state = event.to_state or known or ""
        status = IssueStatus(
            event.project, event.iid, event.title, state, event.url, event.kind,
            event.message, event.at,
        )  # fmt: skip
        if state:
            await self.kv.set(_state_key(ref), state)
        await self._put(jobs.status_key(ref), jobs.STATUS, ref, jobs.status_json(status), True)
        if event.kind is not EventKind.GATE and (event.message.strip() or event.to_state):
            await self._event_job(jobs.DETAIL, event)
        target = wf.states.get(event.to_state or "")
        if target is not None and target.kind is StateKind.WAITING:
            await self._event_job(jobs.QUESTIONS, event)
        if event.kind in TERMINAL_KINDS or (
            target is not None and target.kind is StateKind.TERMINAL
        ):
            await self._event_job(jobs.FILER, event)
        left = wf.states.get(known or "")
        if left is not None and left.kind is StateKind.GATE and state != left.name:
            # The gate was decided (here, in GitLab, or by another host): its card says so.
            await self._put(f"{jobs.CLOSE}:{ref}:{state}", jobs.CLOSE, ref, {"state": state})

    async def request(self, gate: GateRequest) -> None:
        ref = f"{gate.project}#{gate.iid}"
        if not await self._put(jobs.card_key(gate), jobs.CARD, ref, jobs.gate_json(gate)):
            return  # the engine asked again (a resumed run), or the card is on its way
        waiting = Event(
            EventKind.GATE, gate.project, gate.iid, gate.title, strip_details(gate.summary),
            None, gate.gate, gate.url,
        )  # fmt: skip
        await self._event_job(jobs.DETAIL, waiting)  # the plan (or MR state) in the thread

    async def post_digest(self, embed: discord.Embed) -> None:
        key = f"{jobs.DIGEST}:{datetime.now(UTC).isoformat()}"
        await self._put(key, jobs.DIGEST, "", jobs.embed_json(embed))

    async def _event_job(self, kind: str, event: Event) -> None:
        await self._put(jobs.event_key(kind, event), kind, event.ref, jobs.event_json(event))

    async def _put(
        self, key: str, kind: str, ref: str, payload: dict[str, Any], replace: bool = False
    ) -> bool:
        added = await self.outbox.put(key, kind, ref, payload, replace=replace)
        self._pending = await self.outbox.count()
        self._idle.clear()
        self._wakeup.set()
        return added

    # ------------------------------------------------------------ the sender

    def start(self) -> None:
        metrics.DISCORD_QUEUE.set_function(lambda: self._pending)  # read at each scrape
        if self._task is None:
            self._idle.clear()  # what a previous process left in the outbox is sent first
            self._task = asyncio.create_task(self._drain(), name="discord surface")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def flush(self) -> None:
        """Wait until every queued job was sent (tests; a clean shutdown)."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return self._pending

    async def _drain(self) -> None:
        while True:
            self._wakeup.clear()
            entry = await self.outbox.first()
            self._pending = await self.outbox.count()
            if entry is None:
                if not self._wakeup.is_set():
                    self._idle.set()
                    await self._wakeup.wait()
                continue
            if not self.connected.is_set():
                await self.connected.wait()
                continue  # read it again: a later transition may have replaced it meanwhile
            try:
                await self._send(entry, f"cl{entry.id}")  # a nonce: 25 characters at most
            except TRANSIENT as error:
                log.warning("discord unreachable, %s job kept: %s", entry.kind, error)
                await asyncio.sleep(self.retry_seconds)
                continue
            except Exception:
                log.exception("discord %s job dropped: issue=%s", entry.kind, entry.ref)
            await self.outbox.sent(entry)
            await asyncio.sleep(self.min_interval)

    async def _send(self, entry: Outgoing, nonce: str) -> None:
        """Send ``entry``; each message it posts has ``nonce`` (with a suffix of its own when
        the job posts several), the same each time the job is tried."""
        kind, data = entry.kind, entry.payload
        if kind == jobs.STATUS:
            await self._status(jobs.status_of(data), nonce)
        elif kind == jobs.DETAIL:
            await self._detail(jobs.event_of(data), nonce)
        elif kind == jobs.CARD:
            await self._card(jobs.gate_of(data), nonce)
        elif kind == jobs.QUESTIONS:
            await self._questions(jobs.event_of(data), nonce)
        elif kind == jobs.FILER:
            await self._tell_filer(jobs.event_of(data), nonce)
        elif kind == jobs.CLOSE:
            await self._close_cards(entry.ref, str(data["state"]))
        elif kind == jobs.DIGEST and self.settings.status_channel_id:
            channel = await self._channel(self.settings.status_channel_id)
            embed = jobs.embed_of(data)
            await channel.send(embed=embed, nonce=nonce, allowed_mentions=NO_MENTIONS)

    # ------------------------------------------------------------ status message and thread

    def _key(self, ref: str) -> str:
        return f"discord:status:{ref}"

    async def _status(self, status: IssueStatus, nonce: str) -> None:
        channel_id = self.settings.status_channel_id
        if channel_id is None:
            return
        ref = status.ref
        run = await self.desk.services.storage.runs.latest(status.project, status.iid)
        shown = replace(
            status, attempt=run.attempt if run else None, worker=run.worker if run else ""
        )
        embed = status_embed(shown, self.desk.services.workflow)
        place = await self.kv.get_json(self._key(ref))
        channel = await self._channel(channel_id)
        if place is not None:
            try:
                await channel.get_partial_message(place["message"]).edit(
                    embed=embed, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.NotFound:
                log.info("status message of %s was deleted; posting a new one", ref)
        message = await channel.send(embed=embed, nonce=nonce, allowed_mentions=NO_MENTIONS)
        try:
            thread = await message.create_thread(name=cut(f"{ref} {status.title}", THREAD_NAME))
            thread_id = thread.id
        except discord.HTTPException as error:
            if error.code != THREAD_EXISTS:
                raise
            thread_id = message.id  # a thread started from a message has the message's id
        await self.kv.set_json(self._key(ref), {"message": message.id, "thread": thread_id})

    async def _thread(self, ref: str) -> Any | None:
        place = await self.kv.get_json(self._key(ref))
        return await self._channel(place["thread"]) if place is not None else None

    async def _detail(self, event: Event, nonce: str) -> None:
        thread = await self._thread(event.ref)
        if thread is None:
            return
        if event.from_state and event.to_state:
            moved = f"{event.from_state} → {event.to_state}"
        else:
            moved = f"waiting at {event.to_state}" if event.to_state else event.kind.value
        text = f"`{event.at:%H:%M}` **{plain(moved, 200)}**"
        if event.message.strip():
            text += "\n" + block(event.message, CONTENT - len(text) - 10, event.url)
        await thread.send(text, nonce=nonce, allowed_mentions=NO_MENTIONS)

    async def _questions(self, event: Event, nonce: str) -> None:
        thread = await self._thread(event.ref)
        if thread is None:
            return
        kv = self.desk.services.storage.settings
        for question in await self.desk.questions(event.project, event.iid):
            key = f"discord:question:{question.note_id}"
            if question.answer is not None or await kv.get(key):
                continue
            head = f"**An agent asks** on {link(event.ref, event.url)} (run {question.run}):"
            text = f"{head}\n{block(question.text, CONTENT - len(head) - 10, event.url)}"
            view = question_view(event.project, event.iid, question.note_id)
            once = f"{nonce}-{question.note_id}"
            await thread.send(text, view=view, nonce=once, allowed_mentions=NO_MENTIONS)
            await kv.set(key, "posted")

    async def _card(self, gate: GateRequest, nonce: str) -> None:
        kind = self.desk.gate_of(gate.gate)
        channel_id = self.settings.approvals_channel_id
        if kind is None or channel_id is None:
            return
        ref = f"{gate.project}#{gate.iid}"
        if await self.cards.posted(ref, gate.gate, gate.revision):
            return  # the engine asked again (a resumed run): one card per revision
        if not await self._still_at(gate):
            return  # decided meanwhile (auto-approved, or in GitLab while Discord was away)
        filer = gate.filer or await self.desk.filer(gate.project, gate.iid) or ""
        card = gate_card(
            replace(gate, filer=filer), kind, await self.desk.spend(gate.project, gate.iid)
        )
        channel = await self._channel(channel_id)
        view = gate_view(gate.project, gate.iid, kind, gate.revision)
        message = await channel.send(
            embed=card, view=view, nonce=nonce, allowed_mentions=NO_MENTIONS
        )
        await self.cards.add(PostedCard(ref, gate.gate, gate.revision, channel_id, message.id))
        # An older revision's card at the same gate can no longer be decided.
        for older in await self.cards.open(ref):
            if older.gate == gate.gate and older.revision != gate.revision:
                await self._close(older, f"superseded by a newer revision ({gate.revision[:12]})")

    async def _close_cards(self, ref: str, state: str) -> None:
        """The issue left the gate these cards ask about: each says so, without buttons."""
        for card in await self.cards.open(ref):
            if card.gate != state:
                await self._close(card, f"decided: the issue is now at {state}")

    async def _close(self, card: PostedCard, why: str) -> None:
        channel = await self._channel(card.channel_id)
        try:
            message = await channel.fetch_message(card.message_id)
        except discord.NotFound:
            await self.cards.close(card)  # someone deleted the card
            return
        if message.components:  # still has its buttons: not decided on this card
            shown = message.embeds[0] if message.embeds else None
            embed = closed_card(shown, why, datetime.now(UTC))
            await message.edit(embed=embed, view=None, allowed_mentions=NO_MENTIONS)
        await self.cards.close(card)

    async def _still_at(self, gate: GateRequest) -> bool:
        issue = await self.desk.services.gateway.get_issue(gate.project, gate.iid)
        state = read_state(self.desk.services.workflow, issue.labels).state
        return state is not None and state.name == gate.gate

    async def _tell_filer(self, event: Event, nonce: str) -> None:
        filer = await self.desk.filer(event.project, event.iid)
        if not filer:
            return
        what = event.to_state or event.kind.value
        text = (
            f"Your goal {link(f'{event.ref} {event.title}', event.url)} is **{plain(what, 60)}**."
        )
        if event.message.strip():
            text += "\n" + block(event.message, CONTENT - len(text) - 10, event.url)
        for n, discord_id in enumerate(self.desk.identities.discord_ids(filer)):
            user = await self._user(discord_id)
            try:
                await user.send(text, nonce=f"{nonce}-{n}", allowed_mentions=NO_MENTIONS)
            except discord.Forbidden:
                log.info("cannot DM discord user %s (DMs closed)", discord_id)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (the surface's sender, the feed, the gateway) and wait until it stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _state_key(ref: str) -> str:
    return f"discord:state:{ref}"
