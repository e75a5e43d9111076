"""Stand-in roles and probes for the tests of event-driven passes: roles that hold, note or park
their runs, GitLab calls counted from the audit trail, an engine serving as a host."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from bot.app import Runtime
from forge.gateway import Gateway
from forge.types import Issue
from forge.webhooks.events import IssueEvent
from roles.context import RunContext, Services
from roles.engine.loop import GO, Admission, Engine, RoleResult, Verdict
from roles.qa.parking import RunParked
from sim.core.app import RunningSim
from tests.support.engine import configure, runtime_for
from tests.support.forge import gateway_for
from workflow import Outcome


class Holding:
    """A pm role whose runs wait until the test ends them; it records what it started."""

    name = "pm"

    def __init__(self) -> None:
        self.started: list[int] = []
        self.go = asyncio.Event()

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return GO

    async def run(self, ctx: RunContext) -> RoleResult:
        self.started.append(ctx.issue.iid)
        await self.go.wait()
        return RoleResult(Outcome.SUCCEEDED)


async def gitlab_calls(runtime: Runtime, what: str = "gitlab.%") -> int:
    """GitLab calls this host made so far whose audit name is like ``what`` (all by
    default; reads are counted per row)."""
    await runtime.storage.audit.flush_reads()
    with sqlite3.connect(runtime.config.storage.path) as conn:
        rows = conn.execute("SELECT COALESCE(SUM(count), 0) FROM audit WHERE what LIKE ?", (what,))
        return int(rows.fetchone()[0])


async def until(check: Callable[[], object], limit: float) -> float:
    """Seconds until ``check()`` held (fails after ``limit``); an async check is awaited."""
    began = time.monotonic()
    while not await _held(check):
        assert time.monotonic() - began < limit, "not in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def _held(check: Callable[[], object]) -> bool:
    result = check()
    return bool(await result if inspect.isawaitable(result) else result)


@contextlib.asynccontextmanager
async def hosting(engine: Engine, role: Holding) -> AsyncIterator[None]:
    """The engine serving as a host does (run_forever, polling every second); on the way
    out the role's runs are let go and the engine stopped."""
    host = asyncio.create_task(engine.run_forever(poll_seconds=1.0))
    try:
        yield
    finally:
        role.go.set()
        host.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await host
        await engine.stop()


def issue_event(issue: Issue) -> IssueEvent:
    return IssueEvent(
        uuid=None,
        received_at=datetime.now().astimezone(),
        project_id=1,
        project_path=issue.project,
        iid=issue.iid,
        action="update",
        state=issue.state,
        labels=list(issue.labels),
        updated_at=datetime.fromisoformat(issue.updated_at.replace("Z", "+00:00")),
    )


class Noting:
    """A pm role that posts one keyed note twice and counts the notes reads that cost."""

    name = "pm"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ctx: RunContext | None = None
        self.ids: list[int] = []
        self.note_reads = -1

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return GO

    async def run(self, ctx: RunContext) -> RoleResult:
        self.ctx = ctx
        before = await gitlab_calls(self.runtime, "gitlab.note.list")
        self.ids.append((await ctx.note("report", "the first word")).id)
        self.ids.append((await ctx.note("report", "said twice")).id)
        self.note_reads = await gitlab_calls(self.runtime, "gitlab.note.list") - before
        return RoleResult(Outcome.BLOCKED)


class Parking:
    """A pm role whose first run parks (as QA does while a pipeline runs) and whose second
    ready issue waits; it counts how often that one is admitted."""

    name = "pm"

    def __init__(self, waits: int) -> None:
        self.waits = waits
        self.admits = 0
        self.runs: list[int] = []

    async def admit(self, services: Services, issue: Issue) -> Admission:
        if issue.iid == self.waits:
            self.admits += 1
            return Admission(Verdict.WAIT, "held by the test")
        return GO

    async def run(self, ctx: RunContext) -> RoleResult:
        self.runs.append(ctx.issue.iid)
        if len(self.runs) == 1:
            raise RunParked(0.3, "a pipeline runs", mr_iid=1, branch="work")
        return RoleResult(Outcome.SUCCEEDED)


@contextlib.asynccontextmanager
async def this_host_and_another(
    sim: RunningSim, base: Path
) -> AsyncIterator[tuple[Runtime, Gateway, Engine, Holding]]:
    """This host (its runtime, and an engine whose pm role holds its runs) and another host's
    gateway (same bot user, its own SQLite file) on one simulator."""
    async with (
        runtime_for(sim, configure(sim, base / "host")) as (runtime, _),
        gateway_for(sim, base / "other.sqlite3") as (other, _storage),
    ):
        role = Holding()
        yield runtime, other, Engine(runtime.services, {"pm": role}), role
