"""The project listing's deltas (forge/issue_index.py): from a little before the newest change
seen, until a listing made long enough after it proves every write up to it listed; then
from there. Real simulator, python-gitlab over HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from forge.issue_index import OVERLAP, IssueIndex, _moment, _stamp
from sim.core.app import RunningSim
from tests.support.forge import PROJECT, admin, gateway_for, make_project


async def test_a_quiet_project_after_a_burst_stops_relisting_the_burst(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    burst = [project.issues.create({"title": f"filed by a script {n}"}) for n in range(120)]
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        now = [1000.0]
        index = IssueIndex(gateway, clock=lambda: now[0])
        listed: list[int] = []
        list_ = index._list

        async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            items = await list_(*args, **kwargs)
            listed.append(len(items))
            return items

        index._list = counted  # type: ignore[method-assign]
        first = await index.refresh(PROJECT)
        assert len(first.issues) == 120

        async def delta(after: float) -> tuple[int, frozenset[int]]:
            now[0] += after
            listed.clear()
            listing = await index.refresh(PROJECT)
            assert len(listed) == 1  # a delta: one listing
            return listed[0], listing.changed

        # Inside the overlap after the newest change: the burst is listed again, unchanged.
        assert await delta(1) == (120, frozenset())
        # A listing made the overlap after the newest change was first seen settles it...
        assert await delta(OVERLAP.total_seconds()) == (120, frozenset())
        # ...and the next ones start from it: only what carries that newest stamp.
        small, changed = await delta(60)
        assert small <= 2 and changed == frozenset()
        # A change afterwards is still seen, and only it is new.
        project.issues.update(burst[5].iid, {"title": "edited by a human"})
        count, changed = await delta(60)
        assert changed == frozenset({burst[5].iid}) and count <= 3
        listing = index.listing(PROJECT)
        assert listing is not None
        edited = listing.get(burst[5].iid)
        assert edited is not None and edited.title == "edited by a human"


async def test_a_late_commit_inside_the_overlap_is_found_and_the_full_listing_backs_it_up(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    late, _, newest = [project.issues.create({"title": f"issue {n}"}) for n in range(3)]
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        now = [1000.0]
        index = IssueIndex(gateway, clock=lambda: now[0], full_every=600)
        await index.refresh(PROJECT)

        def commit_late(title: str) -> None:
            """A write GitLab stamped 10 s before the newest change seen, committed only now
            (a slow transaction): its updated_at lies behind what was listed already."""
            project.issues.update(late.iid, {"title": title})
            stamp = _before(str(newest.updated_at), seconds=10)
            sim.call(_restamp(sim, late.id, stamp))

        async def refreshed_title(after: float) -> str:
            now[0] += after
            listing = await index.refresh(PROJECT)
            found = listing.get(late.iid)
            assert found is not None
            return found.title

        commit_late("committed late")
        assert await refreshed_title(1) == "committed late"  # inside the overlap: found
        await refreshed_title(OVERLAP.total_seconds())  # this delta settles the listing
        # A write later than the assumption allows (30 s after its stamp) is not in a delta...
        commit_late("committed far too late")
        assert await refreshed_title(60) == "committed late"
        # ...but the full listing, every ten minutes, sees it.
        assert await refreshed_title(600) == "committed far too late"


def _before(stamp: str, *, seconds: float) -> str:
    return _stamp(_moment(stamp) - timedelta(seconds=seconds))


async def _restamp(sim: RunningSim, issue_id: int, stamp: str) -> None:
    assert sim.sim is not None
    async with sim.sim.store.write() as conn:
        await conn.execute("UPDATE issues SET updated_at = ? WHERE id = ?", (stamp, issue_id))


async def test_settling_counts_from_the_answer_that_showed_the_newest_change(
    sim: RunningSim, tmp_path: Path
) -> None:
    """A listing takes time: the settling clock starts when the newest stamp came in, not
    when the listing began, and a copy of the host's own write puts the deltas back on the
    overlap (a human's write stamped before it may commit after it)."""
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    for n in range(3):
        project.issues.create({"title": f"issue {n}"})
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        now = [1000.0]
        index = IssueIndex(gateway, clock=lambda: now[0])
        list_ = index._list

        async def slow(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            now[0] += 4  # every listing call takes 4 s
            return await list_(*args, **kwargs)

        index._list = slow  # type: ignore[method-assign]
        listing = await index.refresh(PROJECT)  # a full listing: 2 calls, 8 s
        assert listing.newest_since == 1008
        now[0] = 1008 + OVERLAP.total_seconds() - 2  # 30 s after it began, not after it answered
        await index.refresh(PROJECT)
        assert listing.settled == ""
        await index.refresh(PROJECT)  # began 32 s after the answer: settles
        assert listing.settled == listing.newest
        # A read's copy leaves it settled; our own write's answer puts the deltas back on
        # the overlap until it is quiet again.
        first = listing.issues[min(listing.issues)]
        index.observe(first)
        assert listing.settled == listing.newest
        index.observe(first, written=True)
        assert listing.settled == "" and listing.newest_since == now[0]
        # A delta that finds a newer change starts the settling clock when its answer came in.
        edited = project.issues.get(first.iid)
        edited.title = "edited"
        edited.save()
        began = now[0] = now[0] + 100
        await index.refresh(PROJECT)  # a delta: one call, 4 s
        assert listing.newest == _stamp(_moment(str(edited.updated_at)))
        assert listing.newest_since == began + 4


async def test_the_gateways_reads_leave_the_listing_settled_and_its_writes_unsettle_it(
    sim: RunningSim, tmp_path: Path
) -> None:
    """Every poll reads the control issue: were a read to unsettle the listing, a quiet
    project's deltas would re-read the last burst on every pass again."""
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    filed = [project.issues.create({"title": f"issue {n}"}) for n in range(3)]
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        now = [1000.0]
        gateway.issues.clock = lambda: now[0]
        listing = await gateway.issues.refresh(PROJECT)
        now[0] += OVERLAP.total_seconds() + 1
        await gateway.issues.refresh(PROJECT)
        assert listing.settled == listing.newest
        await gateway.get_issue(PROJECT, filed[0].iid)
        assert listing.settled == listing.newest
        await gateway.update_issue(PROJECT, filed[0].iid, add_labels=["workflow::blocked"])
        assert listing.settled == ""
