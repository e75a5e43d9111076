"""Discussions and approvals on simulated merge requests, through python-gitlab."""

from __future__ import annotations

import re

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from tests.support.sim_mr import BOT_TOKEN, Repo, make_repo


def _open_mr(sim: RunningSim) -> tuple[Repo, str]:
    repo = make_repo(sim)
    head = repo.feature("feature/a", {"a.txt": "one\ntwo\n"})
    repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
    )
    return repo, head


def test_thread_create_reply_resolve_unresolve(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    reviewer_view = repo.maintainer.mergerequests.get(1)
    thread = reviewer_view.discussions.create({"body": "Why two lines?"})
    assert re.fullmatch(r"[0-9a-f]{40}", thread.id)
    assert thread.individual_note is False
    first = thread.attributes["notes"][0]
    assert (first["type"], first["resolvable"], first["resolved"]) == (
        "DiscussionNote",
        True,
        False,
    )
    author_view = repo.bot.mergerequests.get(1)
    assert author_view.blocking_discussions_resolved is False
    assert author_view.user_notes_count == 1
    assert author_view.detailed_merge_status == "mergeable"  # resolution not required by default
    answer = author_view.discussions.get(thread.id).notes.create({"body": "Because."})
    assert answer.type == "DiscussionNote"
    fetched = author_view.discussions.get(thread.id)
    assert [note["body"] for note in fetched.attributes["notes"]] == ["Why two lines?", "Because."]
    fetched.resolved = True
    fetched.save()
    resolved = author_view.discussions.get(thread.id)
    assert all(note["resolved"] for note in resolved.attributes["notes"])
    assert resolved.attributes["notes"][0]["resolved_by"]["username"] == "crewline-bot"
    assert repo.bot.mergerequests.get(1).blocking_discussions_resolved is True
    author_view.discussions.update(thread.id, {"resolved": False})
    assert repo.bot.mergerequests.get(1).blocking_discussions_resolved is False


def test_diff_note_carries_its_position(sim: RunningSim) -> None:
    repo, head = _open_mr(sim)
    mr = repo.maintainer.mergerequests.get(1)
    refs = mr.diff_refs
    position = {
        "base_sha": refs["base_sha"],
        "start_sha": refs["start_sha"],
        "head_sha": refs["head_sha"],
        "position_type": "text",
        "new_path": "a.txt",
        "old_path": "a.txt",
        "new_line": 2,
    }
    thread = mr.discussions.create({"body": "typo here", "position": position})
    note = thread.attributes["notes"][0]
    assert note["type"] == "DiffNote" and note["resolvable"] is True
    assert note["position"]["new_path"] == "a.txt" and note["position"]["new_line"] == 2
    assert note["position"]["head_sha"] == head
    reply = mr.discussions.get(thread.id).notes.create({"body": "fixed"})
    assert reply.type == "DiffNote"
    listed = mr.discussions.list(get_all=True)
    assert [d.id for d in listed] == [thread.id]
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as bad:
        mr.discussions.create({"body": "x", "position": {**position, "head_sha": ""}})
    assert bad.value.response_code == 400


def test_mr_notes_share_the_issue_note_sequence_and_are_individual(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    issue = repo.root.issues.create({"title": "work"})
    issue_note = issue.notes.create({"body": "claim"})
    mr = repo.bot.mergerequests.get(1)
    mr_note = mr.notes.create({"body": "handoff"})
    second_issue_note = issue.notes.create({"body": "later"})
    assert issue_note.id < mr_note.id < second_issue_note.id
    thread = mr.discussions.create({"body": "thread"})
    assert thread.attributes["notes"][0]["id"] > second_issue_note.id
    discussions = {d.id: d for d in mr.discussions.list(get_all=True)}
    individual = [d for d in discussions.values() if d.individual_note]
    assert [d.attributes["notes"][0]["body"] for d in individual] == ["handoff"]
    assert individual[0].attributes["notes"][0]["resolvable"] is False
    assert [n.body for n in mr.notes.list(get_all=True, sort="asc")] == ["handoff", "thread"]


def test_discussion_resolution_required_blocks_merge_status(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    repo.maintainer.manager.gitlab.http_put(
        f"/projects/{repo.root.id}",
        post_data={"only_allow_merge_if_all_discussions_are_resolved": True},
    )
    mr = repo.maintainer.mergerequests.get(1)
    thread = mr.discussions.create({"body": "blocker"})
    assert repo.bot.mergerequests.get(1).detailed_merge_status == "discussions_not_resolved"
    mr.discussions.update(thread.id, {"resolved": True})
    assert repo.bot.mergerequests.get(1).detailed_merge_status == "mergeable"


def test_unknown_discussion_is_404(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        repo.bot.mergerequests.get(1).discussions.get("0" * 40)
    assert missing.value.response_code == 404


def test_approvals_with_sha_and_requirements(sim: RunningSim) -> None:
    repo, head = _open_mr(sim)
    mr = repo.maintainer.mergerequests.get(1)
    approvals = mr.approvals.get()
    assert (approvals.approved, approvals.approvals_required, approvals.approvals_left) == (
        True,
        0,
        0,
    )
    repo.maintainer.manager.gitlab.http_put(
        f"/projects/{repo.root.id}", post_data={"approvals_before_merge": 1}
    )
    assert repo.bot.mergerequests.get(1).detailed_merge_status == "not_approved"
    with pytest.raises(gitlab.exceptions.GitlabMRApprovalError) as stale:
        mr.approve(sha="f" * 40)
    assert stale.value.response_code == 409
    assert stale.value.error_message == f"SHA does not match HEAD of source branch: {head}"
    mr.approve(sha=head)
    state = mr.approvals.get()
    assert (state.approved, state.approvals_left) == (True, 0)
    assert [a["user"]["username"] for a in state.approved_by] == ["maintainer"]
    assert repo.bot.mergerequests.get(1).detailed_merge_status == "mergeable"
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError) as twice:
        mr.approve()
    assert twice.value.response_code == 401
    mr.unapprove()
    assert mr.approvals.get().approvals_left == 1
    with pytest.raises(gitlab.exceptions.GitlabMRApprovalError) as not_approved:
        mr.unapprove()
    assert not_approved.value.response_code == 404


def test_author_may_approve_own_mr_and_per_mr_requirement(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    mine = repo.bot.mergerequests.get(1)
    mine.approvals.update(new_data={"approvals_required": 2})
    mine.approve()
    state = mine.approvals.get()
    assert (state.approvals_required, state.approvals_left, state.user_has_approved) == (2, 1, True)
    repo.maintainer.mergerequests.get(1).approve()
    assert mine.approvals.get().approvals_left == 0


def test_guests_cannot_approve(sim: RunningSim) -> None:
    repo, _ = _open_mr(sim)
    users = {u.username: u.id for u in repo.root.manager.gitlab.users.list(get_all=True)}
    repo.root.members.create({"user_id": users["crewline-bot"], "access_level": 10})
    response = requests.post(
        f"{sim.base_url}/api/v4/projects/{repo.root.id}/merge_requests/1/approve",
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=10,
    )
    assert response.status_code == 403
