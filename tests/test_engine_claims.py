"""A run that lost its claim writes nothing, and a host survives claims lost or GitLab
failing while it resumes (issue 10, defects 2 and 3; docs/decisions/0013).

Real simulator, real SQLite, the real engine; the role is a stand-in (no agent): what is
tested is what the engine lets a run write and how the host goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gitlab
import pytest

from bot.app import Runtime
from forge.claims import Claims
from forge.client import ForgeError
from forge.types import Issue
from roles.context import RunContext, Services
from roles.engine.loop import GO, Admission, Engine, RoleResult
from sim.core.app import RunningSim
from storage import Lease, RunStatus, Storage
from tests.support.engine import PROJECT, configure, file_goal, note_bodies, root, runtime_for
from tests.support.forge import gateway_for
from workflow import Outcome

HANDOFF = "handoff from the old round"


class Paused:
    """A pm role whose run waits until the test lets it go on; then it may note, and it
    succeeds."""

    name = "pm"

    def __init__(self, *, write_note: bool = False) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.write_note = write_note

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return GO

    async def run(self, ctx: RunContext) -> RoleResult:
        self.started.set()
        await self.go.wait()
        if self.write_note:
            await ctx.note("handoff", HANDOFF)
        return RoleResult(Outcome.SUCCEEDED)


def quick() -> Paused:
    role = Paused()
    role.go.set()
    return role


async def state_of(runtime: Runtime, iid: int) -> str:
    """Read as an onlooker (not through the host's gateway, which a test may break)."""

    def read() -> list[str]:
        gl = gitlab.Gitlab(runtime.config.gitlab.url, private_token="sim-root-token")
        return list(gl.projects.get(PROJECT).issues.get(iid).labels)

    labels = await asyncio.to_thread(read)
    return next(label.removeprefix("workflow::") for label in labels if "workflow::" in label)


@contextlib.asynccontextmanager
async def two_hosts(
    sim: RunningSim, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Claims[Lease], Storage]]:
    """This host's runtime, and another host's claims (its own database)."""
    async with (
        runtime_for(sim, configure(sim, tmp_path / "host")) as (runtime, _),
        gateway_for(sim, tmp_path / "other.sqlite3") as (gateway, storage),
    ):
        ttl = runtime.services.claims.ttl
        yield runtime, Claims(gateway, storage.leases, worker="other", ttl_seconds=ttl), storage


async def interrupted_run(runtime: Runtime, title: str) -> Issue:
    """A pm run that claimed its issue and was killed mid-work: its run row, its claim
    note and its local lease stay behind."""
    role = Paused()
    engine = Engine(runtime.services, {"pm": role})
    issue = await file_goal(runtime, title, "A goal.")
    assert await engine.tick() == 1
    await asyncio.wait_for(role.started.wait(), 30)
    await engine.stop()
    return issue


async def keep_running_until(host: asyncio.Task[None], done: Any, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not await done():
        if host.done():
            raise AssertionError(f"the host stopped: {host.exception()!r}")
        assert time.monotonic() < deadline, "the host did not get there in time"
        await asyncio.sleep(0.1)


async def stop(host: asyncio.Task[None], engine: Engine) -> None:
    host.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await host
    await engine.stop()


@pytest.mark.parametrize("write_note", [True, False], ids=["notes-then-finishes", "finishes"])
async def test_a_run_whose_round_was_requeued_neither_notes_nor_moves_the_issue(
    demo_sim: RunningSim, tmp_path: Path, write_note: bool
) -> None:
    """Issue 10, defect 2: the losing run of a double pickup noted, pushed and moved the
    issue on, passing on the other claimer's running state. Here its round is re-queued
    under it and another host wins the next one: it must write nothing and end abandoned."""
    async with two_hosts(demo_sim, tmp_path) as (runtime, other, _):
        role = Paused(write_note=write_note)
        engine = Engine(runtime.services, {"pm": role})
        issue = await file_goal(runtime, "Taken over", "A goal.")
        assert await engine.tick() == 1
        await asyncio.wait_for(role.started.wait(), 30)
        # A janitor's re-queue that slipped in (or a human's), then another host's claim.
        root(demo_sim).projects.get(PROJECT).issues.update(
            issue.iid, {"add_labels": "workflow::pm-ready", "remove_labels": "workflow::pm-running"}
        )
        taken = await other.claim(issue, "pm", "r-other")
        assert taken is not None

        role.go.set()
        await asyncio.wait_for(engine.drain(), 30)

        assert await state_of(runtime, issue.iid) == "pm-running"
        await other.check(taken)  # the other host still holds its round
        assert not any(HANDOFF in body for body in note_bodies(demo_sim, issue.iid))
        run = await runtime.storage.runs.latest(PROJECT, issue.iid, "pm")
        assert run is not None and run.status == RunStatus.ABANDONED


async def test_a_claim_lost_while_resuming_does_not_stop_the_host(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, defect 3: at start-up another host's janitor expired our claim (and its
    host took the issue) between adopt's two reads; `crewline worker` died of ClaimLost.
    The run is lost work: abandoned, and the host goes on with the next issue."""
    async with two_hosts(demo_sim, tmp_path) as (runtime, other, other_storage):
        stuck = await interrupted_run(runtime, "Interrupted")
        waiting = await file_goal(runtime, "Next", "Another goal.")
        later = datetime.now(UTC) + timedelta(seconds=2 * other.ttl)
        janitor = Claims(
            other.gateway, other_storage.leases, worker="other", ttl_seconds=other.ttl,
            clock=lambda: later,
        )  # fmt: skip
        take_lease = runtime.storage.leases.acquire
        moved: list[bool] = []

        async def janitor_between_the_reads(
            key: str, holder: str, ttl: float, *, retake: bool = False
        ) -> Lease | None:
            # Adopt takes its lease back between its reads of the live claim and its renewal.
            if not moved and retake and key.endswith(f":{stuck.iid}"):
                moved.append(await janitor.expire(stuck, "pm", reason="expired elsewhere"))
                moved.append(await other.claim(stuck, "pm", "r-other") is not None)
            return await take_lease(key, holder, ttl, retake=retake)

        monkeypatch.setattr(runtime.storage.leases, "acquire", janitor_between_the_reads)
        restarted = Engine(runtime.services, {"pm": quick()})
        host = asyncio.create_task(restarted.run_forever(0.2))
        try:

            async def next_one_done() -> bool:
                return await state_of(runtime, waiting.iid) == "plan-review"

            await keep_running_until(host, next_one_done)
        finally:
            await stop(host, restarted)

        assert moved == [True, True]
        assert await state_of(runtime, stuck.iid) == "pm-running"  # the other host's round
        run = await runtime.storage.runs.latest(PROJECT, stuck.iid, "pm")
        assert run is not None and run.status == RunStatus.ABANDONED


async def test_gitlab_failing_for_one_resumed_run_does_not_stop_the_host(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming one run fails (GitLab answers 500 for its issue): the host works on the
    other issues and resumes that run on a later pass."""
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path / "host")) as (runtime, _):
        stuck = await interrupted_run(runtime, "Interrupted")
        waiting = await file_goal(runtime, "Next", "Another goal.")
        gateway = runtime.services.gateway
        get_issue = gateway.get_issue
        failed: list[int] = []

        async def fails_once_for_the_stuck_issue(project: str, iid: int) -> Issue:
            if iid == stuck.iid and not failed:
                failed.append(iid)
                raise ForgeError("issue.get", "Internal Server Error", 500)
            return await get_issue(project, iid)

        monkeypatch.setattr(gateway, "get_issue", fails_once_for_the_stuck_issue)
        restarted = Engine(runtime.services, {"pm": quick()})
        host = asyncio.create_task(restarted.run_forever(0.2))
        try:

            async def both_done() -> bool:
                # GitLab moves first, SQLite records the run's end after: wait for both.
                states = [await state_of(runtime, i.iid) for i in (stuck, waiting)]
                run = await runtime.storage.runs.latest(PROJECT, stuck.iid, "pm")
                recorded = run is not None and run.status != RunStatus.RUNNING
                return states == ["plan-review", "plan-review"] and recorded

            await keep_running_until(host, both_done)
        finally:
            await stop(host, restarted)

        assert failed == [stuck.iid]
        run = await runtime.storage.runs.latest(PROJECT, stuck.iid, "pm")
        assert run is not None and run.status == RunStatus.SUCCEEDED  # the same run, resumed
