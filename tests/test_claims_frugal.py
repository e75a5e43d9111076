"""Fewer reads around a run's writes (docs/decisions/0041): a finishing move that reads no
issue its fence's label events prove, and a burst of writes that shares one round read.
Each keeps the refusals of the read it saves. Real simulator, real SQLite."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from forge.calls import check_fence, fenced
from forge.claims import ClaimLost, Claims
from forge.gateway import Gateway
from roles.context import RunContext
from roles.engine.fence import RunFence
from sim.core.app import RunningSim
from tests.support.forge import PROJECT, admin, gateway_for, make_project

TTL = 30


async def labels_of(gateway: Gateway, iid: int) -> set[str]:
    return {label for label in (await gateway.get_issue(PROJECT, iid)).labels if "::" in label}


async def test_held_labels_prove_the_running_state_until_anything_moves_the_issue(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        filed = await gateway.create_issue(PROJECT, "Held", "", ["workflow::pm-ready"])
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=TTL)
        claim = await claims.claim(filed, "pm", "r")
        assert claim is not None
        assert await claims.held_labels(claim) == ("workflow::pm-running",)
        project = admin(sim).projects.get(PROJECT)
        # A human adds another workflow label (GitLab Free keeps both): not proven any more.
        project.issues.update(filed.iid, {"add_labels": "workflow::blocked"})
        assert await claims.held_labels(claim) is None
        project.issues.update(filed.iid, {"remove_labels": "workflow::blocked"})
        assert await claims.held_labels(claim) is None  # a workflow add came after ours
        # A re-queue still ends the claim, as the fence says.
        project.issues.update(
            filed.iid,
            {"add_labels": "workflow::pm-ready", "remove_labels": "workflow::pm-running"},
        )
        with pytest.raises(ClaimLost, match="re-queued"):
            await claims.held_labels(claim)


async def test_a_finishing_move_on_proven_labels_reads_nothing_and_moves(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        filed = await gateway.create_issue(PROJECT, "Moves", "", ["workflow::pm-ready"])
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=TTL)
        claim = await claims.claim(filed, "pm", "r")
        assert claim is not None
        held = await claims.held_labels(claim)
        assert held is not None

        async def refused(*_: Any, **__: Any) -> Any:
            raise AssertionError("the issue was read again")

        monkeypatch.setattr(gateway, "get_issue", refused)
        moved = await gateway.transition(
            PROJECT,
            filed.iid,
            "plan-review",
            expect={"pm-running"},
            known=replace(filed, labels=held),
        )
        monkeypatch.undo()
        assert {label for label in moved.labels if "::" in label} == {"workflow::plan-review"}
        assert await labels_of(gateway, filed.iid) == {"workflow::plan-review"}


async def test_a_burst_of_writes_shares_one_round_read_and_a_later_write_reads_again(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        filed = await gateway.create_issue(PROJECT, "Burst", "", ["workflow::pm-ready"])
        now = [datetime.now(UTC)]
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=TTL, clock=lambda: now[0])
        claim = await claims.claim(filed, "pm", "r")
        assert claim is not None
        reads: list[int] = []
        read_events = gateway.label_events

        async def counted(project: str, iid: int) -> Any:
            reads.append(iid)
            return await read_events(project, iid)

        monkeypatch.setattr(gateway, "label_events", counted)
        ticks = [100.0]
        ctx = cast(
            RunContext, SimpleNamespace(services=SimpleNamespace(claims=claims), claim=claim)
        )
        fence = RunFence(ctx, burst=0.5, clock=lambda: ticks[0])
        with fenced(fence):
            await gateway.post_note(PROJECT, filed.iid, "first of a burst")
            ticks[0] += 0.2
            await gateway.post_note(PROJECT, filed.iid, "second of a burst")
            assert len(reads) == 1
            # The run worked a while; meanwhile its round was re-queued: the next write reads.
            admin(sim).projects.get(PROJECT).issues.update(
                filed.iid,
                {"add_labels": "workflow::pm-ready", "remove_labels": "workflow::pm-running"},
            )
            ticks[0] += 5
            with pytest.raises(ClaimLost, match="re-queued"):
                await gateway.post_note(PROJECT, filed.iid, "after the re-queue")
            assert len(reads) == 2
            # Within a burst the time half still refuses a claim too close to its expiry.
            fresh = RunFence(ctx, burst=60, clock=lambda: ticks[0])
            fresh._read_at = ticks[0]
            now[0] += timedelta(seconds=TTL)
            with fenced(fresh), pytest.raises(ClaimLost, match="too soon"):
                await check_fence()
        bodies = [note.body for note in await gateway.notes(PROJECT, filed.iid)]
        assert not any("after the re-queue" in body for body in bodies)
