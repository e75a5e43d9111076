"""What this host knows of the whole fleet: pause, every host's spend today, learnings.

Read from each project's control issue (``forge/control.py``, decision 0027) at most once per
``max_age`` seconds: one ``GET`` of the issue, and its notes only when its ``updated_at``
moved. Every refresh also publishes this host's spend today (when it changed) and indexes the
learnings other hosts posted (``roles/learnings_index.py``). A pause written on any host
stops every host's claiming at its next refresh; this host's own pause is seen at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from forge.client import ForgeError, ForgeNotFound
from forge.control import (
    PAUSE_ALL,
    PAUSE_PROJECT,
    ControlIssues,
    ControlView,
    HostSpend,
    pause_body,
    spend_body,
    spend_note_key,
)
from forge.control import pause_note_key as pause_note_key
from forge.types import Issue
from roles.learnings_index import index_learnings
from roles.ports import IssueTracker
from storage import Spend, Storage

log = logging.getLogger(__name__)

SPEND_KEPT_DAYS = 14  # a host deletes its own older spend notes: the issue stays small


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FleetState:
    def __init__(
        self,
        gateway: IssueTracker,
        storage: Storage,
        projects: Collection[str],
        worker: str,
        *,
        max_age: float = 30.0,
    ) -> None:
        self.gateway = gateway
        self.storage = storage
        self.projects = list(projects)
        self.worker = worker
        self.max_age = max_age  # seconds between two reads of GitLab (the poll interval)
        self.now: Callable[[], datetime] = _utcnow  # the budget period's clock (tests move it)
        self.control = ControlIssues(gateway)
        self.views: dict[str, ControlView] = {p: ControlView(p, None) for p in self.projects}
        self._read_at: float | None = None
        self.noticed: set[tuple[str, int, str]] = set()  # budget holds announced (roles/budget)

    # ------------------------------------------------------------ the period

    def day(self) -> date:
        return self.now().astimezone(UTC).date()

    def day_start(self) -> datetime:
        return datetime.combine(self.day(), datetime.min.time(), tzinfo=UTC)

    # ------------------------------------------------------------ reading

    def paused(self, project: str) -> bool:
        view = self.views.get(project)
        return view is not None and view.paused

    def paused_everywhere(self, project: str) -> bool:
        view = self.views.get(project)
        return view is not None and view.pause.get(PAUSE_ALL, False)

    def changed(self, project: str, iid: int | None, body: str = "") -> None:
        """A webhook said something changed: a note on the control issue, or a learnings
        note (``body``, only a hint: what is read comes through the trust filter) is read
        on the next pass instead of at the next poll."""
        view = self.views.get(project)
        if (view is not None and iid is not None and iid == view.iid) or "learnings" in body:
            self._read_at = None

    async def refresh_if_stale(self) -> None:
        """Refresh unless the last one is younger than ``max_age``; a GitLab failure keeps
        what was known (logged) and is retried on the next pass."""
        if self._read_at is not None and time.monotonic() - self._read_at < self.max_age:
            return
        try:
            await self.refresh()
        except ForgeError as error:
            log.warning("reading the fleet's state failed, keeping what was known: %s", error)
        except Exception:  # never a reason to stop claiming: the next pass tries again
            log.exception("reading the fleet's state failed, keeping what was known")

    async def refresh(self) -> int:
        """Read every control issue (cached by ``updated_at``), publish this host's spend,
        index new learnings; returns how many projects have a control issue. Every pause
        is read before anything is written: a failing write never hides another project's."""
        self._read_at = time.monotonic()
        await self.read()
        found = 0
        for project in self.projects:
            view = self.views[project]
            if view.iid is not None:
                found += 1
                if await self.control.repair(view):  # read its notes again next time
                    self.views[project] = view = replace(view, updated_at="")
                await self._publish(view)
            await index_learnings(self.gateway, self.storage, project)
        return found

    async def read(self) -> None:
        """Read every control issue and nothing more: no spend published, no learnings
        indexed, no write to GitLab (what a read-only command such as ``crewline status``
        may do; this host's own spend comes from its records, see :meth:`spend_today`)."""
        for project in self.projects:
            await self._read(project)

    async def ensure(self) -> None:
        """Create any missing control issue (``crewline run``/``worker`` at start), then read."""
        for project in self.projects:
            await self.control.ensure(project)
        await self.refresh()

    async def _read(self, project: str) -> ControlView:
        known = self.views.get(project, ControlView(project, None))
        issue: Issue | None = None
        if known.iid is not None:
            try:
                issue = await self.gateway.get_issue(project, known.iid)
            except ForgeNotFound:  # deleted by an administrator: look for another one
                issue = None
        if issue is None:
            issue = await self.control.find(project)
        if issue is None:
            view = ControlView(project, None)
        elif issue.iid == known.iid and issue.updated_at == known.updated_at:
            return known
        else:
            view = await self.control.read(project, issue)
        self.views[project] = view
        return view

    # ------------------------------------------------------------ spend

    def others_spend(self, project: str | None = None) -> Spend:
        """What the other hosts report for today, on ``project`` or on every project."""
        day = self.day().isoformat()
        entries = [
            entry
            for name, view in self.views.items()
            if project is None or name == project
            for entry in view.spend_on(day)
            if entry.worker != self.worker
        ]
        return Spend(tokens=sum(e.tokens for e in entries), cost_usd=sum(e.usd for e in entries))

    async def spend_today(self) -> list[HostSpend]:
        """Every host's spend today, one entry per host (summed over projects): the others'
        as they published it, this host's from its own records (fresher)."""
        day = self.day().isoformat()
        by_host: dict[str, HostSpend] = {}
        for view in self.views.values():
            for entry in view.spend_on(day):
                if entry.worker == self.worker:
                    continue
                have = by_host.get(entry.worker)
                by_host[entry.worker] = (
                    entry
                    if have is None
                    else replace(have, tokens=have.tokens + entry.tokens, usd=have.usd + entry.usd)
                )
        mine = await self.storage.runs.spend(since=self.day_start())
        if mine.tokens or mine.cost_usd:
            by_host[self.worker] = HostSpend(self.worker, day, mine.tokens, mine.cost_usd, 0)
        return sorted(by_host.values(), key=lambda e: e.worker)

    async def _publish(self, view: ControlView) -> None:
        assert view.iid is not None
        day = self.day()
        local = await self.storage.runs.spend(project=view.project, since=self.day_start())
        mine = [e for e in view.spend_on(day.isoformat()) if e.worker == self.worker]
        same = (
            mine
            and mine[0].tokens == local.tokens
            and round(mine[0].usd, 6) == round(local.cost_usd, 6)
        )
        changed = False
        if not same and (local.tokens or local.cost_usd or mine):
            await self.control.put_note(
                view,
                spend_note_key(self.worker, day.isoformat()),
                spend_body(self.worker, day.isoformat(), local.tokens, local.cost_usd),
                mine[0].note_id if mine else None,
            )
            changed = True
        cutoff = (day - timedelta(days=SPEND_KEPT_DAYS)).isoformat()
        for old in view.spend:
            if old.worker == self.worker and old.day < cutoff:
                await self.gateway.delete_note(view.project, view.iid, old.note_id)
                changed = True
        if changed:  # read the notes again next time, whatever updated_at says
            self.views[view.project] = replace(view, updated_at="")

    # ------------------------------------------------------------ pause

    async def set_pause(self, project: str, scope: str, paused: bool, who: str) -> bool:
        """Pause or resume claiming on ``project`` (``scope``: PAUSE_ALL when every project
        was paused, else PAUSE_PROJECT); False when it already was so. Read fresh first:
        the answer must not rest on a cached view."""
        if scope not in (PAUSE_ALL, PAUSE_PROJECT):
            raise ValueError(f"pause scope must be {PAUSE_ALL!r} or {PAUSE_PROJECT!r}")
        view = await self.control.read(project, await self.control.ensure(project))
        self.views[project] = view
        if view.pause.get(scope, False) == paused:
            return False
        when = self.now().strftime("%Y-%m-%d %H:%M UTC")
        await self.control.put_note(
            view,
            pause_note_key(scope),
            pause_body(project, scope, paused, who, when),
            view.pause_notes.get(scope),
        )
        self.views[project] = replace(view, pause={**view.pause, scope: paused}, updated_at="")
        return True


__all__ = ["PAUSE_ALL", "PAUSE_PROJECT", "FleetState"]
