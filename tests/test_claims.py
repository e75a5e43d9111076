"""The claim protocol against the simulator: one winner among racing workers (in one
process and across OS processes), renewal, release, expiry and takeover."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forge import metrics
from forge.claims import ClaimLost, ClaimMarker, Claims
from sim.core.app import RunningSim
from tests.support.forge import PROJECT, admin, gateway_for, make_project

WORKER = Path(__file__).resolve().parent / "claim_race_worker.py"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_marker_round_trip_and_foreign_markers() -> None:
    expires = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    marker = ClaimMarker("host-1", "r1", "dev", expires)
    assert ClaimMarker.parse(marker.body()) == marker
    assert ClaimMarker.parse("<!-- crewline:claim worker=x run=y -->") is None
    assert ClaimMarker.parse("no marker") is None


def claim_counts() -> dict[str, float]:
    return {r: metrics.CLAIMS.labels(r)._value.get() for r in ("won", "lost", "expired")}


def grown(before: dict[str, float]) -> dict[str, float]:
    return {r: v - before[r] for r, v in claim_counts().items()}


def test_worker_ids_are_validated() -> None:
    with pytest.raises(ValueError, match="worker id"):
        Claims(None, None, worker="bad id -->", ttl_seconds=10)  # type: ignore[arg-type]


async def test_one_winner_among_concurrent_workers(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "a.sqlite3", who="a") as (gw_a, st_a),
        gateway_for(sim, tmp_path / "b.sqlite3", who="b") as (gw_b, st_b),
        gateway_for(sim, tmp_path / "c.sqlite3", who="c") as (gw_c, st_c),
    ):
        issue = await gw_a.create_issue(PROJECT, "Contended", "", ["workflow::pm-ready"])
        workers = [
            Claims(gw, st.leases, worker=name, ttl_seconds=60)
            for gw, st, name in ((gw_a, st_a, "a"), (gw_b, st_b, "b"), (gw_c, st_c, "c"))
        ]
        before = claim_counts()
        results = await asyncio.gather(*(w.claim(issue, "pm", f"run-{w.worker}") for w in workers))
        winners = [claim for claim in results if claim is not None]
        assert len(winners) == 1
        assert grown(before) == {"won": 1, "lost": 2, "expired": 0}
        notes = [n for n in await gw_a.notes(PROJECT, issue.iid) if ClaimMarker.parse(n.body)]
        assert [n.id for n in notes] == [winners[0].note_id]  # losers deleted their notes
        current = await gw_a.get_issue(PROJECT, issue.iid)
        assert (
            "workflow::pm-running" in current.labels and "workflow::pm-ready" not in current.labels
        )


async def test_same_host_workers_are_kept_apart_by_the_lease(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Local", "", ["workflow::pm-ready"])
        first = Claims(gateway, storage.leases, worker="host-1", ttl_seconds=60)
        second = Claims(gateway, storage.leases, worker="host-1b", ttl_seconds=60)
        claim = await first.claim(issue, "pm", "r1")
        assert claim is not None
        assert await second.claim(issue, "pm", "r2") is None
        assert (
            next(
                n for n in await gateway.notes(PROJECT, issue.iid) if "crewline:claim" in n.body
            ).id
            == claim.note_id
        )


async def test_claim_refused_when_issue_no_longer_ready(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Moved", "", ["workflow::pm-ready"])
        await gateway.transition(PROJECT, issue.iid, "plan-review")
        claims = Claims(gateway, storage.leases, worker="w", ttl_seconds=60)
        assert await claims.claim(issue, "pm", "r") is None  # ``issue`` is a stale listing
        assert await storage.leases.get(f"issue:{PROJECT}:{issue.iid}") is None
        assert [
            n for n in await gateway.notes(PROJECT, issue.iid) if "crewline:claim" in n.body
        ] == []


async def test_renew_release_and_expiry_takeover(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    clock = Clock()
    async with (
        gateway_for(sim, tmp_path / "a.sqlite3") as (gw_a, st_a),
        gateway_for(sim, tmp_path / "b.sqlite3") as (gw_b, st_b),
    ):
        issue = await gw_a.create_issue(PROJECT, "Expiring", "", ["workflow::pm-ready"])
        a = Claims(gw_a, st_a.leases, worker="a", ttl_seconds=30, clock=clock)
        b = Claims(gw_b, st_b.leases, worker="b", ttl_seconds=30, clock=clock)
        claim = await a.claim(issue, "pm", "ra")
        assert claim is not None
        clock.now += timedelta(seconds=20)
        claim = await a.renew(claim)
        view = await b.current(PROJECT, issue.iid, "workflow::pm-ready")
        assert view is not None and view.marker.expires == claim.expires
        running = (await b.running(PROJECT, "pm"))[0]
        before = claim_counts()
        assert await b.expire(running, "pm", reason="re-queued") is False  # still live
        clock.now += timedelta(seconds=31)  # a stops renewing
        assert (
            await b.expire(running, "pm", reason="claim expired; re-queued (attempt 2 of 3)")
            is True
        )
        assert grown(before) == {"won": 0, "lost": 0, "expired": 1}
        ready = await gw_b.list_ready(PROJECT, "pm")
        assert [i.iid for i in ready] == [issue.iid]
        assert metrics.READY_ISSUES.labels("pm", PROJECT)._value.get() == 1  # the listing's count
        taken = await b.claim(ready[0], "pm", "rb")
        assert taken is not None
        with pytest.raises(ClaimLost):
            await a.renew(claim)
        await b.release(taken)
        ended = [ClaimMarker.parse(n.body) for n in await gw_b.notes(PROJECT, issue.iid)]
        assert sorted(m.ended or "live" for m in ended if m) == ["expired", "released"]


async def test_a_slow_claimer_loses_to_a_winner_that_already_finished(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b read the issue as ready and moved its labels just before a did; a then won, did
    its work and released before b's claim note was posted. The round is a's: b must lose,
    not find itself the only live claim (found as a double pickup by the 16-process race)."""
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "a.sqlite3") as (gw_a, st_a),
        gateway_for(sim, tmp_path / "b.sqlite3") as (gw_b, st_b),
    ):
        issue = await gw_a.create_issue(PROJECT, "Raced", "", ["workflow::pm-ready"])
        a = Claims(gw_a, st_a.leases, worker="a", ttl_seconds=30)
        b = Claims(gw_b, st_b.leases, worker="b", ttl_seconds=30)
        won = await a.claim(issue, "pm", "ra")
        assert won is not None
        await gw_a.transition(PROJECT, issue.iid, "plan-review", expect={"pm-running"})
        await a.release(won)

        async def passed_its_check_earlier(*args: object, **kwargs: object) -> None:
            return None  # b's label move, whose ready check ran before a moved the issue

        monkeypatch.setattr(gw_b, "transition", passed_its_check_earlier)
        assert await b.claim(issue, "pm", "rb") is None
        markers = [ClaimMarker.parse(n.body) for n in await gw_b.notes(PROJECT, issue.iid)]
        assert [(m.worker, m.ended) for m in markers if m] == [("a", "released")]  # b's deleted


async def test_human_requeue_starts_a_new_round(sim: RunningSim, tmp_path: Path) -> None:
    """A claim note from before the issue last became ready never wins again."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Requeued", "", ["workflow::pm-ready"])
        old = await Claims(gateway, storage.leases, worker="old", ttl_seconds=600).claim(
            issue, "pm", "r1"
        )
        assert old is not None
        await storage.leases.release(old.lease)
        project = admin(sim).projects.get(PROJECT)
        project.issues.update(
            issue.iid, {"add_labels": "workflow::pm-ready", "remove_labels": "workflow::pm-running"}
        )
        await asyncio.sleep(0.01)
        new = await Claims(gateway, storage.leases, worker="new", ttl_seconds=600).claim(
            issue, "pm", "r2"
        )
        assert new is not None and new.worker == "new"


def spawn(sim: RunningSim, tmp_path: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "--url",
            sim.base_url,
            "--project",
            PROJECT,
            "--db",
            str(tmp_path / f"{name}.sqlite3"),
            "--worker",
            name,
            "--out",
            str(tmp_path / f"{name}.out"),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / f"{name}.err", "wb"),
    )


def wins(tmp_path: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for path in tmp_path.glob("*.out"):
        for line in path.read_text().splitlines():
            counts[int(line.split()[0])] += 1
    return counts


def seed_ready_issues(sim: RunningSim, count: int) -> None:
    project = admin(sim).projects.get(PROJECT)
    for n in range(count):
        project.issues.create({"title": f"goal {n}", "labels": "workflow::pm-ready"})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sixteen_processes_claim_each_issue_exactly_once(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    seed_ready_issues(sim, 200)
    started = time.monotonic()
    names = [f"w{n:02d}" for n in range(16)]
    workers = [spawn(sim, tmp_path, name) for name in names]
    failed = {
        name: (tmp_path / f"{name}.err").read_text()[-2000:]
        for name, proc in zip(names, workers, strict=True)
        if proc.wait(timeout=540) != 0
    }
    assert not failed, "\n\n".join(f"{name}:\n{log}" for name, log in failed.items())
    counts = wins(tmp_path)
    tried, lost = (
        sum(column)
        for column in zip(
            *(map(int, path.read_text().split()) for path in tmp_path.glob("*.stats")),
            strict=True,
        )
    )
    per_worker = sorted(len(p.read_text().splitlines()) for p in tmp_path.glob("*.out"))
    print(
        f"claim race: 16 processes, 200 issues in {time.monotonic() - started:.1f} s; "
        f"{tried} claim attempts, {lost} lost and backed off, {sum(counts.values())} won; "
        f"wins per worker {per_worker[0]}..{per_worker[-1]}"
    )
    assert sorted(counts) == list(range(1, 201))
    assert set(counts.values()) == {1}, {iid: n for iid, n in counts.items() if n != 1}
    project = admin(sim).projects.get(PROJECT)
    states = Counter(
        next(lab for lab in issue.labels if lab.startswith("workflow::"))
        for issue in project.issues.list(get_all=True)
    )
    assert states == {"workflow::plan-review": 200}


@pytest.mark.timeout(180)
def test_killed_worker_claim_is_taken_over_after_expiry(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    seed_ready_issues(sim, 1)
    victim = spawn(sim, tmp_path, "victim", "--hold", "--ttl", "2")
    deadline = time.monotonic() + 60
    while not (tmp_path / "victim.out").exists() or not (tmp_path / "victim.out").read_text():
        assert time.monotonic() < deadline, (tmp_path / "victim.err").read_text()
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = spawn(sim, tmp_path, "rescuer", "--janitor", "--ttl", "30")
    assert rescuer.wait(timeout=120) == 0, (tmp_path / "rescuer.err").read_text()[-2000:]
    assert (tmp_path / "rescuer.out").read_text().split()[0] == "1"
    issue = admin(sim).projects.get(PROJECT).issues.get(1)
    assert "workflow::plan-review" in issue.labels
    bodies = [note.body for note in issue.notes.list(get_all=True)]
    assert any("ended=expired" in body and "worker=victim" in body for body in bodies)
    assert any("re-queued (attempt 2 of 3)" in body for body in bodies)
