"""Writes whose answer is lost (performed by GitLab, the client sees a 5xx or a dropped
connection): real HTTP from python-gitlab to the simulator with ``when=after`` fault rules.
Each write is looked up before any retry, so nothing appears twice."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from forge.claims import ClaimMarker, Claims
from forge.client import ForgeOutcomeUnknown, ForgeUnavailable, GitLabClient, RetryPolicy
from forge.gateway import Gateway, note_marker
from forge.guard import Guard
from forge.labels import sync_labels
from forge.settings import GitLabSettings
from forge.sink import seal, unmark
from sim.core.app import RunningSim
from tests.support.faults import add_fault, lose_answer, rules
from tests.support.forge import BOT_TOKEN, PROJECT, admin, gateway_for, make_project
from workflow import default_workflow

NOTES = r"/issues/\d+/notes$"
LOST = [{"status": 503}, {"status": 500}, {"drop": True}]


def hits(sim: RunningSim, rule: dict[str, Any]) -> int:
    return next(int(r["hits"]) for r in rules(sim) if r["id"] == rule["id"])


def _wait_for_hit(sim: RunningSim, rule: dict[str, Any]) -> None:
    deadline = time.monotonic() + 10
    while hits(sim, rule) == 0:
        assert time.monotonic() < deadline, "the request never came"
        time.sleep(0.01)


def counter(sim: RunningSim, method: str, path_regex: str) -> dict[str, Any]:
    """A rule that only counts the matching requests (1 ms of latency each)."""
    answer = add_fault(sim, method=method, path_regex=path_regex, latency_ms=1)
    return dict(answer.json())


@pytest.mark.parametrize("lost", LOST)
async def test_a_keyed_note_whose_answer_is_lost_appears_once(
    sim: RunningSim, tmp_path: Path, lost: dict[str, Any]
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Noted", "")
        lose_answer(sim, "POST", NOTES, **lost)
        note = await gateway.upsert_note(PROJECT, issue.iid, "run-1:plan", "The plan")
        again = await gateway.upsert_note(PROJECT, issue.iid, "run-1:plan", "The plan")  # restart
        marker = note_marker("run-1:plan")
        copies = [n.id for n in await gateway.notes(PROJECT, issue.iid) if marker in n.body]
        assert copies == [note.id] and again.id == note.id
        assert note.body.startswith("The plan")


async def test_an_unkeyed_note_whose_answer_is_lost_appears_once(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Noted", "")
        lose_answer(sim, "POST", NOTES)
        note = await gateway.post_note(PROJECT, issue.iid, "Moved back to ready.")
        notes = [n for n in await gateway.notes(PROJECT, issue.iid) if not n.system]
        assert [n.id for n in notes] == [note.id]
        assert note.body.startswith("Moved back to ready.\n\n<!-- crewline:post id=")


async def test_a_note_refused_before_it_was_performed_is_posted_on_retry(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Noted", "")
        add_fault(sim, method="POST", path_regex=NOTES, status=502, count=1)  # not performed
        note = await gateway.upsert_note(PROJECT, issue.iid, "k", "Body")
        assert [n.id for n in await gateway.notes(PROJECT, issue.iid)] == [note.id]


async def test_a_429_is_retried_without_a_lookup(sim: RunningSim, tmp_path: Path) -> None:
    """GitLab's rate limiter answers 429 before the request is performed."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Limited", "")
        add_fault(sim, method="POST", path_regex=NOTES, status=429, retry_after=0, count=2)
        reads = counter(sim, "GET", NOTES)
        note = await gateway.post_note(PROJECT, issue.iid, "Hello")
        assert hits(sim, reads) == 0
        assert [n.id for n in await gateway.notes(PROJECT, issue.iid)] == [note.id]


async def test_two_hosts_upserting_one_key_at_once_leave_one_note(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "a.sqlite3", who="a") as (host_a, _),
        gateway_for(sim, tmp_path / "b.sqlite3", who="b") as (host_b, _),
    ):
        issue = await host_a.create_issue(PROJECT, "Merged by hand", "")
        # Both look before either posts: each finds nothing and posts its copy.
        add_fault(sim, method="GET", path_regex=NOTES, latency_ms=400, count=2)
        a, b = await asyncio.gather(
            host_a.upsert_note(PROJECT, issue.iid, "merged:mr-1", "!1 was merged."),
            host_b.upsert_note(PROJECT, issue.iid, "merged:mr-1", "!1 was merged."),
        )
        marker = note_marker("merged:mr-1")
        copies = [n.id for n in await host_a.notes(PROJECT, issue.iid) if marker in n.body]
        assert copies == [a.id] and b.id == a.id


async def test_a_claim_note_whose_answer_is_lost_leaves_one_claim_and_the_claimer_wins(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Claimed", "", ["workflow::pm-ready"])
        claims = Claims(gateway, storage.leases, worker="host-1", ttl_seconds=60)
        lose_answer(sim, "POST", NOTES)
        claim = await claims.claim(issue, "pm", "run-1")
        assert claim is not None
        claim_notes = [
            n.id for n in await gateway.notes(PROJECT, issue.iid) if ClaimMarker.parse(n.body)
        ]
        assert claim_notes == [claim.note_id]
        live = await claims.current(PROJECT, issue.iid, "workflow::pm-ready")
        assert live is not None and (live.note.id, live.marker.run) == (claim.note_id, "run-1")


async def test_an_mr_create_whose_answer_is_lost_leaves_one_mr(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    branch = "crewline/1-lost"
    admin(demo_sim).projects.get(PROJECT).branches.create({"branch": branch, "ref": "main"})
    async with gateway_for(demo_sim, tmp_path / "db.sqlite3") as (gateway, _):
        lose_answer(demo_sim, "POST", r"/merge_requests$")
        creates = counter(demo_sim, "POST", r"/merge_requests$")
        mr = await gateway.merges.ensure_mr(
            PROJECT, source_branch=branch, target_branch="main", title="Lost", description="d"
        )
        listed = (
            admin(demo_sim)
            .projects.get(PROJECT)
            .mergerequests.list(source_branch=branch, state="all", get_all=True)
        )
        assert [m.iid for m in listed] == [mr.iid]
        assert hits(demo_sim, creates) == 1  # found by its branch, not created again


def _workflow_labels(sim: RunningSim) -> list[tuple[str, str]]:
    labels = admin(sim).projects.get(PROJECT).labels.list(get_all=True)
    return sorted((label.name, label.color.lower()) for label in labels)


def _wanted(gateway: Any) -> list[tuple[str, str]]:
    return sorted((s.label, s.color.lower()) for s in gateway.workflow.states.values())


async def test_labels_sync_under_a_lost_create(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        lose_answer(sim, "POST", r"/labels$")
        result = await sync_labels(gateway, PROJECT)
        assert _workflow_labels(sim) == _wanted(gateway)
        assert sorted(result.created) == sorted(name for name, _ in _wanted(gateway))


async def test_two_hosts_syncing_labels_at_once_both_succeed(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with (
        gateway_for(sim, tmp_path / "a.sqlite3", who="a") as (host_a, _),
        gateway_for(sim, tmp_path / "b.sqlite3", who="b") as (host_b, _),
    ):
        # Both list before either creates, so both create every label.
        add_fault(sim, method="GET", path_regex=r"/labels$", latency_ms=400, count=2)
        await asyncio.gather(sync_labels(host_a, PROJECT), sync_labels(host_b, PROJECT))
        assert _workflow_labels(sim) == _wanted(host_a)


async def test_labels_sync_adopts_and_corrects_a_label_created_meanwhile(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    project.labels.create({"name": "unrelated", "color": "#123456"})
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        ready = gateway.workflow.state("pm-ready").label
        # The listing is read, then someone creates the label with another colour while its
        # answer travels (1 s late): the sync's create meets GitLab's 409.
        listing = add_fault(
            sim, method="GET", path_regex=r"/labels$", latency_ms=1000, when="after", count=1
        ).json()
        task = asyncio.create_task(sync_labels(gateway, PROJECT))
        await asyncio.to_thread(_wait_for_hit, sim, listing)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(project.labels.create, {"name": ready, "color": "#000000"})
        result = await task
        assert _workflow_labels(sim) == sorted([*_wanted(gateway), ("unrelated", "#123456")])
        assert ready in result.updated


async def test_an_issue_create_whose_outcome_is_unknown_is_not_repeated(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        lose_answer(sim, "POST", r"/issues$")
        with pytest.raises(ForgeOutcomeUnknown, match="may or may not have performed"):
            await gateway.create_issue(PROJECT, "Goal", "")
        assert [i.title for i in await gateway.list_issues(PROJECT)] == ["Goal"]


async def test_a_delete_whose_answer_was_lost_is_done(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Noted", "")
        note = await gateway.post_note(PROJECT, issue.iid, "gone soon")
        lose_answer(sim, "DELETE", r"/notes/\d+$")
        await gateway.delete_note(PROJECT, issue.iid, note.id)  # the retry meets a 404
        assert await gateway.notes(PROJECT, issue.iid) == []


async def test_a_discussion_and_a_reply_whose_answers_are_lost_appear_once(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    branch = "crewline/2-review"
    admin(demo_sim).projects.get(PROJECT).branches.create({"branch": branch, "ref": "main"})
    async with gateway_for(demo_sim, tmp_path / "db.sqlite3") as (gateway, _):
        merges = gateway.merges
        mr = await merges.ensure_mr(
            PROJECT, source_branch=branch, target_branch="main", title="Review", description=""
        )
        finding = f"Rename this.\n\n{seal(note_marker('finding:abc:1'))}"
        lose_answer(demo_sim, "POST", r"/merge_requests/\d+/discussions$")
        opened = await merges.open_discussion(PROJECT, mr.iid, finding)
        lose_answer(demo_sim, "POST", r"/discussions/[^/]+/notes$", drop=True)
        reply = await merges.reply(PROJECT, mr.iid, opened.id, "Fixed in abc.")
        (discussion,) = await merges.discussions(PROJECT, mr.iid)
        assert discussion.id == opened.id
        bodies = [note.body for note in discussion.notes]
        assert len(bodies) == 2 and bodies[0] == unmark(finding)
        assert bodies[1] == reply.body and bodies[1].startswith("Fixed in abc.")


async def test_a_note_whose_answer_comes_after_the_timeout_appears_once(
    sim: RunningSim, tmp_path: Path
) -> None:
    """A read timeout: GitLab performed the post, its answer was on its way too late."""
    make_project(sim)
    settings = GitLabSettings(url=sim.base_url, threads=2, timeout_seconds=0.5)
    client = GitLabClient(
        settings, BOT_TOKEN, retry=RetryPolicy(max_retries=3, budget_seconds=30, base_delay=0.01)
    )
    gateway = Gateway(
        client, guard=Guard([BOT_TOKEN]), audit=None, workflow=default_workflow(), who="t"
    )
    try:
        issue = await gateway.create_issue(PROJECT, "Slow", "")
        add_fault(sim, method="POST", path_regex=NOTES, latency_ms=1500, when="after", count=1)
        note = await gateway.upsert_note(PROJECT, issue.iid, "slow:1", "Late answer")
        assert [n.id for n in await gateway.notes(PROJECT, issue.iid)] == [note.id]
    finally:
        await client.close()


async def test_a_post_that_never_connected_is_retried_blindly() -> None:
    """A refused connection cannot have been performed: retried, no lookup, no 'unknown'."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = GitLabSettings(url=f"http://127.0.0.1:{port}", threads=1, timeout_seconds=2)
    client = GitLabClient(
        settings, BOT_TOKEN, retry=RetryPolicy(max_retries=2, budget_seconds=30, base_delay=0.01)
    )
    gateway = Gateway(
        client, guard=Guard([BOT_TOKEN]), audit=None, workflow=default_workflow(), who="t"
    )
    try:
        with pytest.raises(ForgeUnavailable, match="gave up after 3 attempts") as failed:
            await gateway.create_issue(PROJECT, "Nowhere", "")
        assert not isinstance(failed.value, ForgeOutcomeUnknown)
    finally:
        await client.close()
