"""Event-driven passes and the one listing a pass reads (issue 14; docs/decisions/0028).

Real simulator, real SQLite, the real engine and gateway; the role is a stand-in that
records what it was given. Calls are counted from the audit trail, which records every
GitLab call crewline makes.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from forge.webhooks.events import NoteEvent
from roles.engine.events import Woke, route_event
from roles.engine.loop import Engine
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, file_goal, note_bodies, root, runtime_for
from tests.support.engine_events import (
    Holding,
    Noting,
    Parking,
    gitlab_calls,
    hosting,
    issue_event,
    this_host_and_another,
    until,
)


async def test_an_event_acts_on_its_issue_alone_and_the_poll_starts_the_rest(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        role = Holding()
        engine = Engine(runtime.services, {"pm": role})
        assert await engine.tick() == 0  # the first listing: nothing ready yet
        first = await file_goal(runtime, "First", "A goal.")
        second = await file_goal(runtime, "Second", "A goal.")

        before, listed = (
            await gitlab_calls(runtime),
            await gitlab_calls(runtime, "gitlab.issue.list"),
        )
        assert route_event(engine, issue_event(first)) is Woke.ISSUE
        assert await engine.tick_events() == 1
        await until(lambda: role.started == [first.iid], 10)
        # The event's issue alone, without listing: one read of it, then the claim.
        assert await gitlab_calls(runtime, "gitlab.issue.list") == listed
        assert await gitlab_calls(runtime) - before <= 8

        # The other ready issue waits at most one poll: run_forever's full pass takes it.
        async with hosting(engine, role):
            waited = await until(lambda: second.iid in role.started, 10)
        assert waited < 3.0


async def test_a_missed_webhook_is_picked_up_by_the_next_poll(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """Another host (same bot user) makes an issue ready and its webhook never arrives: the
    next poll's listing, a delta of what changed, finds it."""
    async with this_host_and_another(demo_sim, tmp_path) as (_runtime, other, engine, role):
        parked = await other.create_issue(PROJECT, "Parked", "A goal.", ["workflow::blocked"])
        async with hosting(engine, role):
            await asyncio.sleep(0.5)  # the first full pass has listed it, blocked
            assert role.started == []
            await other.transition(PROJECT, parked.iid, "pm-ready")
            waited = await until(lambda: role.started == [parked.iid], 10)
        assert waited < 3.0


async def test_the_echo_of_our_own_write_wakes_nothing_another_hosts_does(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with this_host_and_another(demo_sim, tmp_path) as (runtime, other, engine, role):
        gateway = runtime.services.gateway
        issue = await file_goal(runtime, "Ours", "A goal.")
        ours = await gateway.transition(PROJECT, issue.iid, "blocked")
        assert route_event(engine, issue_event(ours)) is Woke.OWN
        note = await gateway.post_note(PROJECT, issue.iid, "a note of ours")
        note_event = NoteEvent(
            uuid=None,
            received_at=datetime.now().astimezone(),
            project_id=1,
            project_path=PROJECT,
            noteable_type="Issue",
            issue_iid=issue.iid,
            note_id=note.id,
            body=note.body,
            author_username="crewline",
        )
        assert route_event(engine, note_event) is Woke.OWN

        # The same bot user on another host: its write is news here.
        theirs = await other.transition(PROJECT, issue.iid, "pm-ready")
        assert route_event(engine, issue_event(theirs)) is Woke.ISSUE
        assert await engine.tick_events() == 1
        await until(lambda: role.started == [issue.iid], 10)
        role.go.set()
        await engine.drain()


async def test_a_move_this_host_makes_reaches_the_engine_without_an_event(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """A run that finishes moves its issue to the next ready state: the engine hears it from
    the gateway (its webhook echo is ignored) and, once the slot is free, starts it from
    the listing it holds, without listing again."""
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        role = Holding()
        engine = Engine(runtime.services, {"pm": role})
        issue = await file_goal(runtime, "Back again", "A goal.")
        assert await engine.tick() == 1
        await until(lambda: role.started == [issue.iid], 10)
        await runtime.services.gateway.transition(PROJECT, issue.iid, "blocked")
        role.go.set()
        await engine.drain()
        role.go.clear()
        # A human-side move made through this process (the desk): no webhook needed.
        listed = await gitlab_calls(runtime, "gitlab.issue.list")
        await runtime.services.gateway.transition(PROJECT, issue.iid, "pm-ready")
        assert await engine.tick_events() == 1  # told by the gateway, not by a webhook
        await until(lambda: role.started == [issue.iid, issue.iid], 10)
        assert await gitlab_calls(runtime, "gitlab.issue.list") == listed
        role.go.set()
        await engine.drain()


async def test_a_pass_over_many_waiting_issues_lists_once(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """A thousand waiting issues cost the same as ten: after the first full listing a pass
    asks only what changed (one call), and what it says about dependencies comes from it."""
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        project = root(demo_sim).projects.get(PROJECT)
        gate = project.issues.create({"title": "gate", "labels": "workflow::plan-review"})
        for n in range(120):  # two pages
            project.issues.create(
                {
                    "title": f"waits {n}",
                    "description": f"Depends on #{gate.iid}",
                    "labels": "workflow::dev-ready",
                }
            )
        engine = runtime.engine
        assert await engine.tick() == 0
        assert len(engine.waiting) == 120
        before = await gitlab_calls(runtime)
        for _ in range(3):
            assert await engine.tick() == 0
        assert await gitlab_calls(runtime) - before == 3  # one delta listing per pass
        assert {w.reason for w in engine.waiting.values()} == {
            f"waiting for #{gate.iid} to be done"
        }

        # A change shows in the next delta: the gate closed by hand is done for its dependants.
        project.issues.update(gate.iid, {"state_event": "close"})
        listing = await runtime.services.gateway.issues.refresh(PROJECT)
        assert gate.iid not in listing.issues and gate.iid in listing.changed
        found = await runtime.services.gateway.issues.lookup(PROJECT, gate.iid)
        assert found is not None and found.state == "closed"


async def test_a_fresh_run_posts_its_keyed_notes_without_reading_and_a_resumed_one_finds_them(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        role = Noting(runtime)
        engine = Engine(runtime.services, {"pm": role})
        issue = await file_goal(runtime, "Noted", "A goal.")
        assert await engine.tick() == 1
        await engine.drain()
        assert role.ctx is not None and role.ctx.fresh
        assert role.note_reads == 0  # posted without a lookup, asked again from memory
        assert role.ids[0] == role.ids[1]
        marker = f"crewline:note key={role.ctx.key}:report "
        assert sum(marker in body for body in note_bodies(demo_sim, issue.iid)) == 1

        # The same run resumed after a crash does not know what it posted: it looks first.
        resumed = replace(role.ctx, fresh=False, posted={})
        again = await resumed.note("report", "after a restart")
        assert again.id == role.ids[0]
        assert sum(marker in body for body in note_bodies(demo_sim, issue.iid)) == 1


async def test_an_idle_janitor_pass_and_gate_look_cost_one_listing(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """Issues waiting at the gates, blocked or for a merge request cost nothing per pass once
    read: the janitor's pass is one delta listing, and the gates' look reuses it."""
    from roles.engine.janitor import sweep

    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        project = root(demo_sim).projects.get(PROJECT)
        for n in range(5):
            for state in ("plan-review", "merge-ready", "blocked", "review-ready"):
                project.issues.create({"title": f"{state} {n}", "labels": f"workflow::{state}"})
        engine = runtime.engine
        await sweep(runtime.services, busy=engine.inflight_keys())
        await engine.reask_gates()

        before = await gitlab_calls(runtime)
        report = await sweep(runtime.services, busy=engine.inflight_keys())
        assert await gitlab_calls(runtime) - before == 1  # the delta listing
        assert not any(vars(report).values())
        before = await gitlab_calls(runtime)
        await engine.reask_gates()
        assert await gitlab_calls(runtime) - before == 0  # the janitor's listing serves

        # A change still shows: a note on a waiting issue (at plan-review) makes the next
        # pass read it again: the listing, its label events (how long it waited) and its
        # notes (a recorded decision); then the gates read its notes once more.
        project.issues.get(1).notes.create({"body": "a human remark"})
        before = await gitlab_calls(runtime)
        await sweep(runtime.services, busy=engine.inflight_keys())
        assert await gitlab_calls(runtime) - before == 3
        await engine.reask_gates()
        assert await gitlab_calls(runtime) - before == 4


async def test_events_about_issues_not_ready_cost_no_call(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with this_host_and_another(demo_sim, tmp_path) as (runtime, other, engine, role):
        issue = await other.create_issue(PROJECT, "Elsewhere", "A goal.", ["workflow::blocked"])
        blocked = await other.transition(PROJECT, issue.iid, "plan-review")
        # As run_forever does: a full pass first, which reads the fleet's state (the pause).
        assert await engine.tick() == 0
        before = await gitlab_calls(runtime)
        for _ in range(3):  # a burst about an issue waiting at a gate
            assert route_event(engine, issue_event(blocked)) is Woke.ISSUE
        assert await engine.tick_events() == 0
        assert await gitlab_calls(runtime) - before == 0
        assert role.started == []


async def test_a_pause_another_host_wrote_stops_the_next_event_pass(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """The webhook of the pause note on the control issue marks the fleet's state stale: the
    next event pass reads it before it claims, not the next poll."""
    from bot.fleet_commands import operator_pause

    async with (
        runtime_for(demo_sim, configure(demo_sim, tmp_path / "a", worker_id="host-a")) as (a, _),
        runtime_for(demo_sim, configure(demo_sim, tmp_path / "b", worker_id="host-b")) as (b, _),
    ):
        control = await a.services.fleet.control.ensure(PROJECT)
        b.services.fleet.max_age = 3600  # a long poll interval
        role = Holding()
        engine = Engine(b.services, {"pm": role})
        assert await engine.tick() == 0  # the fleet's state and the listing read: nothing
        assert (await operator_pause(a, PROJECT, paused=True)).changed
        goal = await file_goal(b, "Paused meanwhile", "A goal.")
        # What bot/serve.py's on_event does with the pause's note event, then the goal's.
        b.services.fleet.changed(PROJECT, control.iid)
        assert route_event(engine, issue_event(goal)) is Woke.ISSUE
        assert await engine.tick_events() == 0
        assert await engine.paused(PROJECT)
        assert role.started == []


async def test_a_due_parked_run_starts_on_an_event_pass_and_asks_nothing_else(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        parking = await file_goal(runtime, "Parks", "A goal.")
        waiting = await file_goal(runtime, "Waits", "A goal.")
        role = Parking(waits=waiting.iid)
        engine = Engine(runtime.services, {"pm": role})
        assert await engine.tick() == 1
        await until(lambda: (PROJECT, parking.iid) in engine.parked, 10)
        await engine.drain()
        await engine.tick_events()  # the parked run gave its slot back: the listing again
        admits, listed = role.admits, await gitlab_calls(runtime, "gitlab.issue.list")

        await until(lambda: engine._parked_waking, 10)  # due: the engine was woken
        assert await engine.tick_events() == 1  # resumed, without a listing call
        await engine.drain()
        assert role.runs == [parking.iid, parking.iid]
        assert (PROJECT, parking.iid) not in engine.parked
        assert await gitlab_calls(runtime, "gitlab.issue.list") == listed
        assert role.admits == admits  # no slot was freed: the waiting issue is not asked
