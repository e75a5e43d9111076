"""The engine's notifier and desk on Discord: a status message per issue, edited in place,
with a thread for the details; approval cards; agents' questions with an Answer button;
terminal events told to the goal's filer; the daily digest.

The engine never waits for Discord: :meth:`notify` and :meth:`request` only queue work.
One sender task drains the queue, one Discord call at a time, ``min_interval`` apart, so a
burst of transitions never meets Discord's rate limits: an issue's status update waits in
the queue at most once (a later transition joins it, and the edit shows the newest state).
While the gateway is disconnected, or a call fails because Discord is away, the job stays
queued and is sent when Discord answers again. Where each issue's message and thread live
is kept in SQLite, so edits continue after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import discord

from bot.cards import IssueStatus, gate_card, status_embed
from bot.desk import Desk
from bot.render import CONTENT, NO_MENTIONS, THREAD_NAME, block, cut, link, plain, strip_details
from bot.settings import DiscordSettings
from bot.views import gate_view, question_view
from forge import metrics
from roles.notify import Event, EventKind, GateRequest
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


@dataclass(frozen=True)
class Job:
    kind: str  # status | detail | card | questions | filer | digest
    ref: str = ""
    event: Event | None = None
    gate: GateRequest | None = None
    embed: discord.Embed | None = None


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
        self._jobs: deque[Job] = deque()
        self._latest: dict[str, IssueStatus] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ the engine's side

    async def notify(self, event: Event) -> None:
        wf = self.desk.services.workflow
        ref = event.ref
        known = self._latest.get(ref)
        state = event.to_state or (known.state if known else "")
        self._latest[ref] = IssueStatus(
            event.project,
            event.iid,
            event.title,
            state,
            event.url,
            event.kind,
            event.message,
            event.at,
        )
        if not any(job.kind == "status" and job.ref == ref for job in self._jobs):
            self._put(Job("status", ref))
        if event.kind is not EventKind.GATE and (event.message.strip() or event.to_state):
            self._put(Job("detail", ref, event=event))
        target = wf.states.get(event.to_state or "")
        if target is not None and target.kind is StateKind.WAITING:
            self._put(Job("questions", ref, event=event))
        if event.kind in TERMINAL_KINDS or (
            target is not None and target.kind is StateKind.TERMINAL
        ):
            self._put(Job("filer", ref, event=event))

    async def request(self, gate: GateRequest) -> None:
        ref = f"{gate.project}#{gate.iid}"
        self._put(Job("card", ref, gate=gate))
        waiting = Event(
            EventKind.GATE, gate.project, gate.iid, gate.title, strip_details(gate.summary),
            None, gate.gate, gate.url,
        )  # fmt: skip
        self._put(Job("detail", ref, event=waiting))  # the plan (or MR state) in the thread

    async def post_digest(self, embed: discord.Embed) -> None:
        self._put(Job("digest", embed=embed))

    def _put(self, job: Job) -> None:
        self._jobs.append(job)
        self._idle.clear()
        self._wakeup.set()

    # ------------------------------------------------------------ the sender

    def start(self) -> None:
        metrics.DISCORD_QUEUE.set_function(lambda: len(self._jobs))  # read at each scrape
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="discord surface")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        """Wait until every queued job was sent (tests; a clean shutdown)."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return len(self._jobs)

    async def _drain(self) -> None:
        while True:
            if not self._jobs:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self.connected.wait()
            job = self._jobs[0]
            try:
                await self._send(job)
            except TRANSIENT as error:
                log.warning("discord unreachable, %s job kept: %s", job.kind, error)
                await asyncio.sleep(self.retry_seconds)
                continue
            except Exception:
                log.exception("discord %s job dropped: issue=%s", job.kind, job.ref)
            self._jobs.popleft()
            await asyncio.sleep(self.min_interval)

    async def _send(self, job: Job) -> None:
        if job.kind == "status":
            await self._status(job.ref)
        elif job.kind == "detail" and job.event is not None:
            await self._detail(job.event)
        elif job.kind == "card" and job.gate is not None:
            await self._card(job.gate)
        elif job.kind == "questions" and job.event is not None:
            await self._questions(job.event)
        elif job.kind == "filer" and job.event is not None:
            await self._tell_filer(job.event)
        elif job.kind == "digest" and job.embed is not None and self.settings.status_channel_id:
            channel = await self._channel(self.settings.status_channel_id)
            await channel.send(embed=job.embed, allowed_mentions=NO_MENTIONS)

    # ------------------------------------------------------------ status message and thread

    def _key(self, ref: str) -> str:
        return f"discord:status:{ref}"

    async def _status(self, ref: str) -> None:
        channel_id = self.settings.status_channel_id
        status = self._latest.get(ref)
        if channel_id is None or status is None:
            return
        kv = self.desk.services.storage.settings
        run = await self.desk.services.storage.runs.latest(status.project, status.iid)
        shown = replace(
            status, attempt=run.attempt if run else None, worker=run.worker if run else ""
        )
        embed = status_embed(shown, self.desk.services.workflow)
        place = await kv.get_json(self._key(ref))
        channel = await self._channel(channel_id)
        if place is not None:
            try:
                await channel.get_partial_message(place["message"]).edit(
                    embed=embed, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.NotFound:
                log.info("status message of %s was deleted; posting a new one", ref)
        message = await channel.send(embed=embed, allowed_mentions=NO_MENTIONS)
        thread = await message.create_thread(name=cut(f"{ref} {status.title}", THREAD_NAME))
        await kv.set_json(self._key(ref), {"message": message.id, "thread": thread.id})

    async def _thread(self, ref: str) -> Any | None:
        place = await self.desk.services.storage.settings.get_json(self._key(ref))
        return await self._channel(place["thread"]) if place is not None else None

    async def _detail(self, event: Event) -> None:
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
        await thread.send(text, allowed_mentions=NO_MENTIONS)

    async def _questions(self, event: Event) -> None:
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
            await thread.send(text, view=view, allowed_mentions=NO_MENTIONS)
            await kv.set(key, "posted")

    async def _card(self, gate: GateRequest) -> None:
        kind = self.desk.gate_of(gate.gate)
        channel_id = self.settings.approvals_channel_id
        if kind is None or channel_id is None:
            return
        kv = self.desk.services.storage.settings
        key = f"discord:card:{gate.project}#{gate.iid}:{kind}:{gate.revision}"
        if await kv.get(key):
            return  # the engine asked again (a resumed run): one card per revision
        if not await self._still_at(gate):
            return  # decided meanwhile (auto-approved, or in GitLab while Discord was away)
        filer = gate.filer or await self.desk.filer(gate.project, gate.iid) or ""
        card = gate_card(
            replace(gate, filer=filer), kind, await self.desk.spend(gate.project, gate.iid)
        )
        channel = await self._channel(channel_id)
        view = gate_view(gate.project, gate.iid, kind, gate.revision)
        message = await channel.send(embed=card, view=view, allowed_mentions=NO_MENTIONS)
        await kv.set(key, str(message.id))

    async def _still_at(self, gate: GateRequest) -> bool:
        issue = await self.desk.services.gateway.get_issue(gate.project, gate.iid)
        state = read_state(self.desk.services.workflow, issue.labels).state
        return state is not None and state.name == gate.gate

    async def _tell_filer(self, event: Event) -> None:
        filer = await self.desk.filer(event.project, event.iid)
        if not filer:
            return
        what = event.to_state or event.kind.value
        text = (
            f"Your goal {link(f'{event.ref} {event.title}', event.url)} is **{plain(what, 60)}**."
        )
        if event.message.strip():
            text += "\n" + block(event.message, CONTENT - len(text) - 10, event.url)
        for discord_id in self.desk.identities.discord_ids(filer):
            user = await self._user(discord_id)
            try:
                await user.send(text, allowed_mentions=NO_MENTIONS)
            except discord.Forbidden:
                log.info("cannot DM discord user %s (DMs closed)", discord_id)
