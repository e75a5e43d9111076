"""The ``MergeRequests`` contract (SPEC §7, §12): branches and merge requests found before
they are created, merges fenced by the head, discussions opened, replied to and resolved.
Each test runs on the in-memory fake and on the real gateway against the simulator."""

from __future__ import annotations

import pytest

from forge.client import ForgeBadRequest, ForgeConflict, ForgeError, ForgeNotFound
from forge.markers import note_marker
from forge.sink import FORGED
from tests.support.forge import PROJECT
from tests.support.forge_backends import OTHER, Backend

BRANCH = "crewline/1-greeting"


async def open_mr(backend: Backend) -> int:
    merges = backend.tracker.merges
    await merges.ensure_branch(PROJECT, BRANCH, "main")
    mr = await merges.ensure_mr(
        PROJECT, source_branch=BRANCH, target_branch="main", title="Greeting",
        description="Closes #1",
    )  # fmt: skip
    return mr.iid


async def test_branches_are_find_or_create(backend: Backend) -> None:
    merges = backend.tracker.merges
    main = await merges.branch_sha(PROJECT, "main")
    assert main is not None and len(main) == 40
    assert await merges.branch_sha(PROJECT, BRANCH) is None
    sha = await merges.ensure_branch(PROJECT, BRANCH, "main")
    assert sha == main  # a new branch starts at its ref
    assert await merges.ensure_branch(PROJECT, BRANCH, "main") == sha
    assert await merges.branch_sha(PROJECT, BRANCH) == sha
    pushed = backend.world.push(BRANCH)
    assert await merges.ensure_branch(PROJECT, BRANCH, "main") == pushed != sha  # found, kept


async def test_ensure_mr_twice_is_one_mr_with_its_fields(backend: Backend) -> None:
    merges = backend.tracker.merges
    await merges.ensure_branch(PROJECT, BRANCH, "main")
    head = backend.world.push(BRANCH)
    mr = await merges.ensure_mr(
        PROJECT, source_branch=BRANCH, target_branch="main", title="Greeting",
        description="Closes #1", labels=["team::core"],
    )  # fmt: skip
    again = await merges.ensure_mr(
        PROJECT, source_branch=BRANCH, target_branch="main", title="Other", description="x"
    )
    assert again.iid == mr.iid and again.title == "Draft: Greeting"
    got = await merges.get_mr(PROJECT, mr.iid)
    assert (got.title, got.description, got.state, got.draft) == (
        "Draft: Greeting", "Closes #1", "opened", True,
    )  # fmt: skip
    assert (got.source_branch, got.target_branch, got.sha) == (BRANCH, "main", head)
    assert got.labels == ("team::core",) and got.author == "crewline-bot"
    assert got.detailed_merge_status == "draft_status"
    found = await merges.find_mr(PROJECT, BRANCH)
    assert found is not None and found.iid == mr.iid
    assert await merges.find_mr(PROJECT, "no-such-branch") is None
    ready = await merges.update_mr(PROJECT, mr.iid, title="Greeting")
    assert not ready.draft and ready.title == "Greeting"
    assert ready.detailed_merge_status == "mergeable"
    pushed = backend.world.push(BRANCH)  # a push moves the open MR's head
    assert (await merges.get_mr(PROJECT, mr.iid)).sha == pushed != head


async def test_a_merge_is_fenced_by_the_head(backend: Backend) -> None:
    merges = backend.tracker.merges
    await merges.ensure_branch(PROJECT, BRANCH, "main")
    head = backend.world.push(BRANCH)
    mr = await merges.ensure_mr(
        PROJECT, source_branch=BRANCH, target_branch="main", title="Go", description="",
        draft=False,
    )  # fmt: skip
    with pytest.raises(ForgeConflict):
        await merges.merge(PROJECT, mr.iid, sha="0" * 40)
    assert (await merges.get_mr(PROJECT, mr.iid)).state == "opened"
    merged = await merges.merge(PROJECT, mr.iid, sha=head)
    assert merged.state == "merged"
    assert await merges.find_mr(PROJECT, BRANCH) is None
    found = await merges.find_mr(PROJECT, BRANCH, state="merged")
    assert found is not None and found.iid == mr.iid
    assert await merges.branch_sha(PROJECT, BRANCH) is None  # the source branch removed


async def test_discussions_open_reply_resolve(backend: Backend) -> None:
    merges, iid = backend.tracker.merges, await open_mr(backend)
    opened = await merges.open_discussion(PROJECT, iid, "Please rename it.")
    assert opened.unresolved and opened.first is not None
    assert opened.first.body.startswith("Please rename it.")
    reply = await merges.reply(PROJECT, iid, opened.id, "Renamed.")
    assert reply.body.startswith("Renamed.") and reply.author == "crewline-bot"
    threads = {d.id: d for d in await merges.discussions(PROJECT, iid)}
    assert [note.id for note in threads[opened.id].notes] == [opened.first.id, reply.id]
    await merges.resolve(PROJECT, iid, opened.id)
    threads = {d.id: d for d in await merges.discussions(PROJECT, iid)}
    assert not threads[opened.id].unresolved
    await merges.resolve(PROJECT, iid, opened.id, resolved=False)
    assert [d.unresolved for d in await merges.discussions(PROJECT, iid) if d.id == opened.id] == [
        True
    ]


async def test_a_plain_mr_note_is_an_unresolvable_discussion(backend: Backend) -> None:
    tracker, iid = backend.tracker, await open_mr(backend)
    note = await tracker.post_note(PROJECT, iid, "A comment on the MR.", on="mr")
    threads = [d for d in await tracker.merges.discussions(PROJECT, iid) if d.first]
    plain = [d for d in threads if d.first is not None and d.first.id == note.id]
    assert len(plain) == 1 and not plain[0].unresolved
    with pytest.raises(ForgeBadRequest):
        await tracker.merges.resolve(PROJECT, iid, plain[0].id)
    keyed = await tracker.upsert_note(PROJECT, iid, "review-1:outcome", "Looks good.", on="mr")
    again = await tracker.upsert_note(PROJECT, iid, "review-1:outcome", "Again.", on="mr")
    assert keyed.id == again.id
    assert [n.id for n in await tracker.notes(PROJECT, iid, on="mr")] == [note.id, keyed.id]


async def test_a_marker_forged_in_a_discussion_is_removed(backend: Backend) -> None:
    tracker, iid = backend.tracker, await open_mr(backend)
    forged = backend.world.note_by(OTHER, iid, f"fine {note_marker('review-1:outcome')}", on="mr")
    notes = {n.id: n for d in await tracker.merges.discussions(PROJECT, iid) for n in d.notes}
    assert FORGED in notes[forged].body and "crewline:note" not in notes[forged].body
    assert await tracker.find_note(PROJECT, iid, "review-1:outcome", on="mr") is None


async def test_approvals_name_who_approved(backend: Backend) -> None:
    merges, iid = backend.tracker.merges, await open_mr(backend)
    assert await merges.approvals(PROJECT, iid) == []
    backend.world.approve(OTHER, iid)
    assert [approval.user for approval in await merges.approvals(PROJECT, iid)] == [OTHER]


async def test_missing_merge_requests_and_refs(backend: Backend) -> None:
    merges = backend.tracker.merges
    with pytest.raises(ForgeNotFound):
        await merges.get_mr(PROJECT, 999)
    with pytest.raises(ForgeError):
        await merges.ensure_branch(PROJECT, "feature", "no-such-ref")
    assert await merges.branch_sha(PROJECT, "feature") is None
