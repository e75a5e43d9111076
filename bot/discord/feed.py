"""What GitLab says moved, for the Discord surface: transitions and gates of every host.

Only the host that runs Discord (`crewline run`) has a surface, but any host (a `crewline
worker`) may move an issue or bring it to a gate. So the surface is fed from GitLab too: an
issue webhook (a label change) wakes :meth:`DiscordFeed.wake`, and a poll every
``poll_seconds`` is the safety net. One pass lists, per project, the issues updated since the
newest ``updated_at`` it saw (one API call; the cursor is kept in SQLite), and for each whose
workflow state differs from the one the status channel was last told of, it tells the surface
as a transition. An issue that reached a gate gets its card (rebuilt from GitLab, one per
revision); one that left a gate has its card closed by the surface. What this host's engine
did itself was told already, with its details, so it is not told twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime

from bot.discord.notify import DiscordSurface, stop_task
from forge.client import ForgeError
from forge.types import Issue
from roles.gates.recovery import gate_request
from roles.notify import Event, EventKind
from workflow import StateKind, read_state

log = logging.getLogger(__name__)


def cursor_key(project: str) -> str:
    return f"discord:feed:{project}"


class DiscordFeed:
    def __init__(self, surface: DiscordSurface, poll_seconds: float) -> None:
        self.surface = surface
        self.services = surface.desk.services
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._passing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look at GitLab now (a webhook said an issue changed)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever(), name="discord feed")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.poll()
            except ForgeError as error:
                log.warning("discord feed: GitLab unreachable, trying on the next wake: %s", error)
            except Exception:
                log.exception("discord feed pass failed; trying on the next wake")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def poll(self) -> int:
        """One pass over every project; how many changes it told the surface of. Passes
        never overlap: a pass holding an older listing would tell a state older than the one
        a later pass told, and a pass returning early would leave its card to the other."""
        async with self._passing:
            told = 0
            for project in self.services.projects:
                told += await self._project(project)
            return told

    async def _project(self, project: str) -> int:
        kv = self.services.storage.settings
        cursor = await kv.get(cursor_key(project))
        # The first pass shows what is open now; later ones every change, closed issues too.
        issues = await self.services.gateway.list_issues(
            project, updated_after=cursor, state="all" if cursor else "opened"
        )
        told = 0
        for issue in issues:
            try:
                told += await self.observe(issue)
            except ForgeError as error:  # its card is asked again by the engine's gate pass
                log.warning("discord feed: issue=%s not shown: %s", issue.ref, error)
        newest = max((issue.updated_at for issue in issues if issue.updated_at), default=None)
        if newest and newest != cursor:
            await kv.set(cursor_key(project), newest)
        return told

    async def observe(self, issue: Issue) -> int:
        """Tell the surface of ``issue``'s state if it is news; 1 if it was."""
        wf = self.services.workflow
        state = read_state(wf, issue.labels).state
        if state is None:
            return 0  # not crewline's work
        known = await self.surface.known_state(issue.ref)
        if known == state.name:
            return 0
        kind = _kind(state.name)
        at = _at(issue.updated_at)
        event = Event(kind, issue.project, issue.iid, issue.title, "", known, state.name)
        await self.surface.notify(replace(event, url=issue.web_url, at=at))
        if state.kind is StateKind.GATE:
            request = await gate_request(self.services.gateway, issue, state.name)
            if request is not None:
                await self.surface.request(request)
        log.info("discord feed: issue=%s %s -> %s", issue.ref, known, state.name)
        return 1


def _kind(name: str) -> EventKind:
    # As the engine names them (roles/engine/loop.py): the surface DMs the filer on these.
    if name == "blocked":
        return EventKind.BLOCKED
    if name == "failed":
        return EventKind.FAILED
    return EventKind.TRANSITION


def _at(updated_at: str) -> datetime:
    try:
        moment = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
