"""The carry-over (docs/decisions/0037): a host that finishes a stage and has a slot for the
next role moves the issue straight from one running state to the next and claims the next
round without listing or re-reading it. Another host cannot take it, a crash between the
move and the claim note is recovered by the janitor, and a claim that rode on an earlier stay
in the running state cannot write into a later one. Real simulator, real SQLite, real git
and agent subprocesses for the end-to-end run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forge.claims import Claim, ClaimLost, ClaimMarker, Claims
from forge.gateway import Gateway
from forge.types import Issue
from sim.core.app import RunningSim
from storage import Lease, Storage
from tests.support.engine import file_goal, reach
from tests.support.forge import PROJECT, admin, gateway_for, make_project
from tests.support.review_merge import full_config, greet_goal, merging_runtime

TTL = 30


async def labels_of(gateway: Gateway, iid: int) -> set[str]:
    return {label for label in (await gateway.get_issue(PROJECT, iid)).labels if "::" in label}


async def dev_claim_then_carry(
    gateway: Gateway, storage: Storage, *, worker: str = "one"
) -> tuple[Claims[Lease], Issue, Claim[Lease]]:
    """Host ``worker`` claims a dev-ready issue, then makes the carry-over's move: its dev
    run finishing straight into review-running (fenced by the dev claim, as the engine does).
    Returns its claims, the moved issue and the dev claim it held; no review note yet."""
    claims = Claims(gateway, storage.leases, worker=worker, ttl_seconds=TTL)
    issue = await gateway.create_issue(PROJECT, "Carried", "", ["workflow::dev-ready"])
    held = await claims.claim(issue, "dev", "dev-run")
    assert held is not None
    moved = await gateway.transition(PROJECT, issue.iid, "review-running", expect={"dev-running"})
    return claims, moved, held


@pytest.fixture
def sim_project(sim: RunningSim) -> RunningSim:
    make_project(sim)
    return sim


async def test_a_carried_issue_completes_with_one_claim_per_round(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """pm-ready to done on one host: review and QA are carried over (the issue is never at
    their ready states, so no other host could have claimed it) and every stage holds one
    claim, won by this host and released."""
    config = full_config(demo_sim, tmp_path)
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "done"}, limit=120)
        gateway = runtime.services.gateway
        events = await gateway.label_events(PROJECT, issue.iid)
        notes = await gateway.notes(PROJECT, issue.iid)
    added = [e.label for e in events if e.action == "add"]
    assert "workflow::review-ready" not in added and "workflow::qa-ready" not in added
    assert "workflow::review-running" in added and "workflow::qa-running" in added
    claims = [m for note in notes if (m := ClaimMarker.parse(note.body)) is not None]
    assert [m.role for m in claims] == ["pm", "dev", "review", "qa"]
    assert {m.worker for m in claims} == {config.worker_id}
    assert all(m.ended == "released" for m in claims)


async def test_another_host_cannot_claim_or_requeue_a_carried_issue(
    sim_project: RunningSim, tmp_path: Path
) -> None:
    async with (
        gateway_for(sim_project, tmp_path / "one.sqlite3") as (gw_one, st_one),
        gateway_for(sim_project, tmp_path / "two.sqlite3") as (gw_two, st_two),
    ):
        claims, moved, held = await dev_claim_then_carry(gw_one, st_one)
        carried = await claims.carry(held, moved, "review", "review-run")
        assert carried is not None and carried.note_id > held.note_id
        two = Claims(gw_two, st_two.leases, worker="two", ttl_seconds=TTL)
        # A stale listing saying review-ready: the claim's move expects it there and refuses.
        stale = replace(moved, labels=("workflow::review-ready",))
        assert await two.claim(stale, "review", "two-run") is None
        # The janitor of the other host sees a live claim: nothing to re-queue.
        assert not await two.expire(moved, "review", reason="expired?")
        # A late claim note (a claimer whose move was in flight since an earlier round) does
        # not take the round: the carried note is the lowest since the running label came.
        late = ClaimMarker("two", "late", "review", datetime.now(UTC) + timedelta(seconds=TTL))
        await gw_two.post_note(PROJECT, moved.iid, late.body())
        view = await two.current(PROJECT, moved.iid, "workflow::review-ready")
        assert view is not None and view.note.id == carried.note_id
        await claims.check(carried)  # still the holder
        assert await labels_of(gw_one, moved.iid) == {"workflow::review-running"}


async def test_a_crash_between_the_carry_move_and_its_claim_note_is_recovered_by_the_janitor(
    sim_project: RunningSim, tmp_path: Path
) -> None:
    """The host died right after moving dev-running -> review-running: no review claim note.
    Every janitor waits a whole TTL from the running-add (a claimer may be between its move
    and its note), then re-queues to review-ready, where anyone claims a fresh round."""
    async with (
        gateway_for(sim_project, tmp_path / "one.sqlite3") as (gw_one, st_one),
        gateway_for(sim_project, tmp_path / "two.sqlite3") as (gw_two, st_two),
    ):
        _, moved, _ = await dev_claim_then_carry(gw_one, st_one)  # ...and the host dies
        now = Claims(gw_two, st_two.leases, worker="two", ttl_seconds=TTL)
        assert not await now.expire(moved, "review", reason="too early")
        later = Claims(
            gw_two,
            st_two.leases,
            worker="two",
            ttl_seconds=TTL,
            clock=lambda: datetime.now(UTC) + timedelta(seconds=2 * TTL),
        )
        assert await later.expire(moved, "review", reason="no claim for a whole TTL")
        assert await labels_of(gw_two, moved.iid) == {"workflow::review-ready"}
        fresh = await now.claim(await gw_two.get_issue(PROJECT, moved.iid), "review", "r2")
        assert fresh is not None and fresh.worker == "two"
        await now.check(fresh)


async def test_a_carry_over_re_queued_before_its_note_is_lost(
    sim_project: RunningSim, tmp_path: Path
) -> None:
    """A human put the issue back to review-ready between the carry's move and its note: the
    round is theirs to hand out, so the carried claim is given up and its note deleted."""
    async with gateway_for(sim_project, tmp_path / "one.sqlite3") as (gw_one, st_one):
        claims, moved, held = await dev_claim_then_carry(gw_one, st_one)
        admin(sim_project).projects.get(PROJECT).issues.update(
            moved.iid,
            {"add_labels": "workflow::review-ready", "remove_labels": "workflow::review-running"},
        )
        assert await claims.carry(held, moved, "review", "review-run") is None
        bodies = [note.body for note in await gw_one.notes(PROJECT, moved.iid)]
        assert not any("run=review-run" in body for body in bodies)


async def test_a_claim_cannot_write_into_a_later_stay_in_its_running_state(
    sim_project: RunningSim, tmp_path: Path
) -> None:
    """A carried round has no ready-add of its own, so the fence also keys on the event that
    added the running label: a holder whose issue a human dragged away, and that came back
    through another carry-over, stops writing (without a new ready-add the old check
    passed)."""
    async with gateway_for(sim_project, tmp_path / "one.sqlite3") as (gw_one, st_one):
        claims, moved, held = await dev_claim_then_carry(gw_one, st_one)
        carried = await claims.carry(held, moved, "review", "review-run")
        assert carried is not None
        await claims.check(carried)
        project = admin(sim_project).projects.get(PROJECT)
        # A human drags it back to dev-running; another dev run carries it to review again.
        project.issues.update(
            moved.iid,
            {"add_labels": "workflow::dev-running", "remove_labels": "workflow::review-running"},
        )
        project.issues.update(
            moved.iid,
            {"add_labels": "workflow::review-running", "remove_labels": "workflow::dev-running"},
        )
        with pytest.raises(ClaimLost, match="moved on since the claim was won"):
            await claims.check(carried)
        with pytest.raises(ClaimLost):
            await claims.renew(carried)
