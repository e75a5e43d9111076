"""The ``IssueTracker`` contract (SPEC §7, §12): issues, labels, transitions and notes, as
the roles rely on them. Each test runs on the in-memory fake and on the real gateway against
the simulator (``tests/contract/conftest.py``): the fake passes exactly what GitLab does."""

from __future__ import annotations

import pytest

from forge.client import ForgeNotFound
from forge.gateway import StaleState
from forge.guard import GuardBlocked
from forge.markers import note_marker
from forge.sink import FORGED, seal
from forge.types import Issue
from tests.support.forge import PROJECT
from tests.support.forge_backends import OTHER, Backend


def label(state: str) -> str:
    return f"workflow::{state}"


async def test_create_get_and_list_by_label(backend: Backend) -> None:
    tracker = backend.tracker
    first = await tracker.create_issue(
        PROJECT, "Add a greeting", "Say hello", [label("pm-ready"), "team::core"]
    )
    other = await tracker.create_issue(PROJECT, "Other", "", [label("dev-ready")])
    got = await tracker.get_issue(PROJECT, first.iid)
    assert (got.iid, got.title, got.description, got.state) == (
        first.iid, "Add a greeting", "Say hello", "opened",
    )  # fmt: skip
    assert sorted(got.labels) == sorted([label("pm-ready"), "team::core"])
    assert got.author == "crewline-bot" and other.iid != first.iid
    listed = await tracker.list_issues(PROJECT, labels=[label("pm-ready")])
    assert [issue.iid for issue in listed] == [first.iid]
    both = await tracker.list_issues(PROJECT, labels=[label("pm-ready"), "team::core"])
    assert [issue.iid for issue in both] == [first.iid]
    assert await tracker.list_issues(PROJECT, labels=[label("pm-ready"), "team::web"]) == []
    everything = await tracker.list_issues(PROJECT)
    assert [issue.iid for issue in everything] == [first.iid, other.iid]  # oldest update first
    with pytest.raises(ForgeNotFound):
        await tracker.get_issue(PROJECT, 999)


async def test_transition_moves_one_label_and_refuses_an_unexpected_state(
    backend: Backend,
) -> None:
    tracker = backend.tracker
    seen: list[Issue] = []
    tracker.moved.append(seen.append)
    issue = await tracker.create_issue(PROJECT, "Move me", "", [label("pm-ready"), "team::core"])
    moved = await tracker.transition(PROJECT, issue.iid, "pm-running", expect={"pm-ready"})
    assert sorted(moved.labels) == sorted([label("pm-running"), "team::core"])
    assert [listener.labels for listener in seen] == [moved.labels]
    assert await tracker.list_ready(PROJECT, "pm") == []  # type: ignore[attr-defined]
    with pytest.raises(StaleState) as stale:
        await tracker.transition(PROJECT, issue.iid, "pm-running", expect={"pm-ready"})
    assert stale.value.actual == "pm-running" and stale.value.expected == ("pm-ready",)
    after = await tracker.get_issue(PROJECT, issue.iid)
    assert sorted(after.labels) == sorted([label("pm-running"), "team::core"])  # untouched


async def test_update_issue_labels_scoped_exclusivity_and_closing(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Labels", "", [label("dev-ready"), "team::core"])
    updated = await tracker.update_issue(
        PROJECT, issue.iid, add_labels=[label("dev-running"), "flaky"]
    )
    # Premium: adding a scoped label drops the other label of its scope, and only that one.
    assert sorted(updated.labels) == sorted([label("dev-running"), "team::core", "flaky"])
    updated = await tracker.update_issue(PROJECT, issue.iid, remove_labels=["flaky"])
    assert sorted(updated.labels) == sorted([label("dev-running"), "team::core"])
    assert tracker.own_writes.issue_event(PROJECT, issue.iid, updated.updated_at)
    closed = await tracker.update_issue(PROJECT, issue.iid, state_event="close")
    assert closed.state == "closed"
    assert await tracker.list_issues(PROJECT, labels=["team::core"]) == []
    listed = await tracker.list_issues(PROJECT, labels=["team::core"], state="closed")
    assert [found.iid for found in listed] == [issue.iid]


async def test_post_edit_delete_notes_in_order(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Notes", "", [])
    first = await tracker.post_note(PROJECT, issue.iid, "first")
    human = backend.world.note_by(OTHER, issue.iid, "a human's comment")
    second = await tracker.post_note(PROJECT, issue.iid, "second")
    assert first.by_crewline and first.author == "crewline-bot"
    assert tracker.own_writes.note_event(first.id) and not tracker.own_writes.note_event(human)
    notes = [note for note in await tracker.notes(PROJECT, issue.iid) if not note.system]
    assert [note.id for note in notes] == sorted([first.id, human, second.id])
    assert notes[1].author == OTHER and not notes[1].by_crewline
    assert notes[0].body.startswith("first") and notes[2].body.startswith("second")
    edited = await tracker.edit_note(PROJECT, issue.iid, first.id, "first, edited")
    assert edited.id == first.id and edited.body == "first, edited"
    await tracker.delete_note(PROJECT, issue.iid, second.id)
    await tracker.delete_note(PROJECT, issue.iid, second.id)  # already gone: no error
    left = [note for note in await tracker.notes(PROJECT, issue.iid) if not note.system]
    assert [(note.id, note.body) for note in left] == [
        (first.id, "first, edited"), (human, "a human's comment"),
    ]  # fmt: skip


async def test_keyed_upsert_is_find_or_create(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Keyed", "", [])
    assert await tracker.find_note(PROJECT, issue.iid, "run-1:plan") is None
    first = await tracker.upsert_note(PROJECT, issue.iid, "run-1:plan", "The plan")
    again = await tracker.upsert_note(PROJECT, issue.iid, "run-1:plan", "Another plan")
    other = await tracker.upsert_note(PROJECT, issue.iid, "run-1:handoff", "Handoff")
    assert first.id == again.id != other.id
    assert again.body.startswith("The plan")  # found, not rewritten
    found = await tracker.find_note(PROJECT, issue.iid, "run-1:plan")
    assert found is not None and found.id == first.id
    bodies = [note.body for note in await tracker.notes(PROJECT, issue.iid) if not note.system]
    assert sum(note_marker("run-1:plan") in body for body in bodies) == 1
    assert len(bodies) == 2


async def test_later_copies_of_a_keyed_note_are_removed(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Copies", "", [])
    sealed = f"Outcome\n\n{seal(note_marker('qa-1:outcome'))}"
    kept = await tracker.post_note(PROJECT, issue.iid, sealed)
    await tracker.post_note(PROJECT, issue.iid, sealed)  # two hosts posted at once
    assert await tracker.remove_copies(PROJECT, issue.iid, await tracker.notes(PROJECT, issue.iid))
    left = [note for note in await tracker.notes(PROJECT, issue.iid) if not note.system]
    assert [note.id for note in left] == [kept.id]
    assert await tracker.remove_copies(PROJECT, issue.iid, left) == 0


async def test_a_marker_forged_by_another_user_carries_nothing(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Forged", "", [])
    forged = backend.world.note_by(OTHER, issue.iid, f"plan\n\n{note_marker('run-1:plan')}")
    assert await tracker.find_note(PROJECT, issue.iid, "run-1:plan") is None
    read = {note.id: note for note in await tracker.notes(PROJECT, issue.iid)}
    assert FORGED in read[forged].body and "crewline:note" not in read[forged].body
    own = await tracker.upsert_note(PROJECT, issue.iid, "run-1:plan", "The real plan")
    assert own.id != forged and own.by_crewline
    found = await tracker.find_note(PROJECT, issue.iid, "run-1:plan")
    assert found is not None and found.id == own.id
    assert forged in {note.id for note in await tracker.notes(PROJECT, issue.iid)}  # not deleted


async def test_a_marker_quoted_in_crewlines_own_note_is_not_kept(backend: Backend) -> None:
    """The sink: a marker crewline did not seal (quoted from an agent, a log) is removed
    from what it writes, so it can never be found as a key."""
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Quoted", "", [])
    quoted = await tracker.post_note(
        PROJECT, issue.iid, f"the agent said {note_marker('run-1:plan')}"
    )
    assert FORGED in quoted.body
    assert await tracker.find_note(PROJECT, issue.iid, "run-1:plan") is None


async def test_blocked_by_names_the_blocking_issues(backend: Backend) -> None:
    tracker = backend.tracker
    waiting, blocker, free = [
        await tracker.create_issue(PROJECT, title, "", []) for title in ("a", "b", "c")
    ]
    backend.world.block(waiting.iid, blocker.iid)
    assert await tracker.blocked_by(PROJECT, waiting.iid) == [blocker.iid]
    assert await tracker.blocked_by(PROJECT, free.iid) == []


async def test_the_listing_and_access_levels(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Listed", "", [label("dev-ready")])
    listing = await tracker.issues.refresh(PROJECT)
    assert [found.iid for found in listing.at(label("dev-ready"))] == [issue.iid]
    await tracker.transition(PROJECT, issue.iid, "dev-running")
    listing = await tracker.issues.current(PROJECT)  # this host's own move shows at once
    assert listing.at(label("dev-ready")) == []
    assert [found.iid for found in listing.at(label("dev-running"))] == [issue.iid]
    assert await tracker.issues.lookup(PROJECT, issue.iid) == listing.get(issue.iid)
    assert await tracker.access.level(PROJECT, "crewline-bot") == 30
    assert await tracker.access.level(PROJECT, OTHER) == 40
    assert await tracker.access.level(PROJECT, "nobody-at-all") == 0
    own = await tracker.trust.own()
    assert own.usernames == frozenset({"crewline-bot"}) and own.bot_id == issue.author_id


async def test_notes_and_links_change_the_issue(backend: Backend) -> None:
    """A waiting issue's memo (roles/context.py) is read again only once it changes: a new
    note and a new blocking link must both move its ``updated_at``."""
    tracker = backend.tracker
    issue, blocker = [await tracker.create_issue(PROJECT, t, "", []) for t in ("a", "b")]
    before = (await tracker.get_issue(PROJECT, issue.iid)).updated_at
    await tracker.post_note(PROJECT, issue.iid, "a note")
    noted = (await tracker.get_issue(PROJECT, issue.iid)).updated_at
    assert noted > before
    backend.world.block(issue.iid, blocker.iid)
    assert (await tracker.get_issue(PROJECT, issue.iid)).updated_at > noted


async def test_label_events_record_each_label_added_and_removed(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Events", "", [label("dev-ready")])
    await tracker.transition(PROJECT, issue.iid, "dev-running")
    events = await tracker.label_events(PROJECT, issue.iid)
    assert [(e.action, e.label) for e in events if e.action == "add"] == [
        ("add", label("dev-ready")), ("add", label("dev-running")),
    ]  # fmt: skip
    assert [(e.action, e.label) for e in events if e.action == "remove"] == [
        ("remove", label("dev-ready"))
    ]
    assert {e.user for e in events} == {"crewline-bot"}
    assert [e.id for e in events] == sorted(e.id for e in events)


async def test_crewlines_own_description_keeps_its_markers(backend: Backend) -> None:
    tracker = backend.tracker
    marked = f"Goal text.\n\n{seal(note_marker('control:state'))}"
    issue = await tracker.create_issue(PROJECT, "Control", "", [])
    updated = await tracker.update_issue(PROJECT, issue.iid, description=marked)
    assert note_marker("control:state") in updated.description
    again = await tracker.get_issue(PROJECT, issue.iid)
    assert again.description == updated.description and FORGED not in again.description


async def test_listing_by_author_and_by_update_time(backend: Backend) -> None:
    tracker = backend.tracker
    ours = await tracker.create_issue(PROJECT, "Ours", "", ["team::core"])
    own = await tracker.trust.own()
    assert [i.iid for i in await tracker.list_issues(PROJECT, author_id=own.bot_id)] == [ours.iid]
    assert await tracker.list_issues(PROJECT, author_id=own.bot_id + 1000) == []
    later = await tracker.update_issue(PROJECT, ours.iid, add_labels=["flaky"])
    since = await tracker.list_issues(PROJECT, updated_after=later.updated_at)
    assert [issue.iid for issue in since] == [ours.iid]  # inclusive, as GitLab compares


async def test_writes_are_screened_and_quick_actions_neutralised(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Screened", "", [])
    token = "glpat-" + "Ab3dE6gH9jK2mN5pQ8sT"
    with pytest.raises(GuardBlocked):
        await tracker.post_note(PROJECT, issue.iid, f"here is the token {token}")
    assert [note for note in await tracker.notes(PROJECT, issue.iid) if not note.system] == []
    note = await tracker.post_note(PROJECT, issue.iid, "Done.\n/close\n/label ~x")
    assert "\n/close" not in note.body and "\n/label" not in note.body
    assert (await tracker.get_issue(PROJECT, issue.iid)).state == "opened"


async def test_editing_a_deleted_note_is_not_found(backend: Backend) -> None:
    tracker = backend.tracker
    issue = await tracker.create_issue(PROJECT, "Gone", "", [])
    note = await tracker.post_note(PROJECT, issue.iid, "soon gone")
    await tracker.delete_note(PROJECT, issue.iid, note.id)
    with pytest.raises(ForgeNotFound):
        await tracker.edit_note(PROJECT, issue.iid, note.id, "too late")
    assert await tracker.finish_pending_notes() == []  # nothing owed


async def test_free_tier_keeps_two_workflow_labels_until_a_transition_repairs_them(
    free_backend: Backend,
) -> None:
    tracker = free_backend.tracker
    issue = await tracker.create_issue(
        PROJECT, "Twice labelled", "", [label("dev-ready"), label("qa-ready")]
    )
    assert sorted(x for x in issue.labels if x.startswith("workflow::")) == [
        label("dev-ready"), label("qa-ready"),
    ]  # fmt: skip
    await tracker.issues.refresh(PROJECT)
    assert [found.iid for found in tracker.issues.twice_labelled(PROJECT)] == [issue.iid]
    repaired = await tracker.transition(PROJECT, issue.iid, "dev-running")
    assert [x for x in repaired.labels if x.startswith("workflow::")] == [label("dev-running")]
    assert tracker.issues.twice_labelled(PROJECT) == []
