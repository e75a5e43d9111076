"""Runs parked while they wait for a pipeline: they hold their claim, not a slot.

A QA run that finds its pipeline still running raises :class:`RunParked` instead of sleeping
in its slot. The engine (``Engine._park``) keeps the run here: its claim stays, renewed by a
small task of its own, and the run stays unfinished in SQLite with its checkpoints. When it is
due (``pipeline_poll_seconds`` later, or at once when a pipeline or merge request event names
its merge request) and a slot is free, the engine launches it again as a resumed run: it
reads its checkpoints and looks at the pipeline once more. So one host watches many merge
requests with one QA slot. A process killed while runs are parked resumes them on restart
like any interrupted run (``Engine.resume``: the claim is adopted, never taken twice); a claim
lost while parked (another host's janitor took it after a long outage) abandons the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from forge.claims import ClaimLost
from roles.context import RunContext
from roles.triage import Fingerprint

Key = tuple[str, int]


class RunParked(Exception):
    """The run waits for something outside it (a pipeline); park it, come back later."""

    def __init__(self, seconds: float, reason: str, *, mr_iid: int, branch: str) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.mr_iid = mr_iid
        self.branch = branch


@dataclass
class ParkedRun:
    role: Any  # the engine's Role (roles/engine/loop.py imports this module)
    ctx: RunContext
    parked: RunParked
    due: float  # time.monotonic() at which it looks again
    renewing: asyncio.Task[None]

    @property
    def lost(self) -> str | None:
        """Why the claim is no longer ours, once its renewal stopped."""
        if not self.renewing.done() or self.renewing.cancelled():
            return None
        error = self.renewing.exception()
        if isinstance(error, ClaimLost):
            return f"the claim was lost while waiting: {error}"
        return f"the claim's renewal stopped while waiting: {error!r}"


class ParkedRuns:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # the engine: a parked run that is due needs an event pass
        self._runs: dict[Key, ParkedRun] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def keys(self) -> set[Key]:
        return set(self._runs)

    def park(
        self,
        role: Any,
        ctx: RunContext,
        parked: RunParked,
        renew: Callable[[RunContext], Coroutine[Any, Any, None]],
    ) -> None:
        key = (ctx.issue.project, ctx.issue.iid)
        renewing = asyncio.create_task(renew(ctx), name=f"renew parked {ctx.issue.ref}")
        self._runs[key] = ParkedRun(role, ctx, parked, time.monotonic() + parked.seconds, renewing)
        asyncio.get_running_loop().call_later(parked.seconds, self._wake)

    def due(self) -> list[ParkedRun]:
        """Runs to look at now (due, or whose claim was lost), oldest due first."""
        now = time.monotonic()
        ready = [run for run in self._runs.values() if run.due <= now or run.lost]
        return sorted(ready, key=lambda run: run.due)

    async def take(self, run: ParkedRun) -> RunContext:
        """Unpark ``run``: its renewal stops (the resumed run renews its claim itself)."""
        self._runs.pop((run.ctx.issue.project, run.ctx.issue.iid), None)
        run.renewing.cancel()
        with contextlib.suppress(BaseException):
            await run.renewing
        return run.ctx

    def wake_for(self, project: str, *, mr_iid: int | None = None, ref: str = "") -> int:
        """A pipeline or merge request event: the runs watching that merge request (by its
        iid, or by its source branch for a branch pipeline) are due now. How many."""
        woken = 0
        for run in self._runs.values():
            if run.ctx.issue.project != project:
                continue
            if (mr_iid is not None and run.parked.mr_iid == mr_iid) or (
                ref and run.parked.branch == ref
            ):
                run.due = 0.0
                woken += 1
        if woken:
            self._wake()
        return woken

    async def stop(self) -> None:
        """Shutting down: the renewals stop, the claims and checkpoints stay for a restart."""
        for run in list(self._runs.values()):
            await self.take(run)


WATCH = "watch-"


def watching(ctx: RunContext) -> bool:
    """Whether this run already began watching its pipeline (before a park or a restart)."""
    return any(name.startswith(WATCH) for name in ctx.done)


def resume_point(ctx: RunContext) -> tuple[int, Fingerprint | None, list[int]]:
    """The newest recorded watch round: its retry count, the first failure, the retried jobs."""
    rounds = [int(name[len(WATCH) :]) for name in ctx.done if name.startswith(WATCH)]
    if not rounds:
        return 0, None, []
    retry = max(rounds)
    mark = ctx.done[f"{WATCH}{retry}"]
    first = mark.get("first")
    fingerprint = Fingerprint(*(tuple(part) for part in first)) if first else None
    return retry, fingerprint, [int(job) for job in mark.get("retried") or []]
