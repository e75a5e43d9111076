"""Simulator award emoji on issue notes and the Emoji Hook, through python-gitlab."""

from __future__ import annotations

from datetime import UTC, datetime

import gitlab
import pytest

from forge.webhooks import parse_event
from forge.webhooks.events import EmojiEvent, MergeRequestEvent, wakes_gates
from sim.core.app import RunningSim
from sim.core.base import GUEST
from tests.support.sim_issues import MAINTAINER_TOKEN, add_user, client, make_project
from tests.support.sim_mr import make_repo
from tests.support.webhook_payloads import merge_request_payload
from tests.test_sim_hooks import Receiver, fast_sim, hooks_of

__all__ = ["fast_sim"]  # the fixture, imported for use here

AWARD_FIELDS = {"id", "name", "user", "created_at", "updated_at", "awardable_id", "awardable_type"}


def test_award_list_get_and_revoke_on_an_issue_note(sim: RunningSim) -> None:
    project_id = make_project(sim)
    issue = client(sim).projects.get(project_id).issues.create({"title": "Plan"})
    note = issue.notes.create({"body": "the plan"})
    as_maintainer = client(sim, MAINTAINER_TOKEN).projects.get(project_id, lazy=True)
    their_note = as_maintainer.issues.get(issue.iid, lazy=True).notes.get(note.id)
    award = their_note.awardemojis.create({"name": "thumbsup"})
    assert set(award.attributes) >= AWARD_FIELDS
    assert (award.name, award.awardable_type, award.awardable_id) == ("thumbsup", "Note", note.id)
    assert award.user["username"] == "maintainer"

    listed = note.awardemojis.list()
    assert [(a.name, a.user["username"]) for a in listed] == [("thumbsup", "maintainer")]
    assert note.awardemojis.get(award.id).name == "thumbsup"
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as twice:
        their_note.awardemojis.create({"name": "thumbsup"})
    assert twice.value.response_code == 404  # GitLab: already awarded
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as not_theirs:
        note.awardemojis.delete(award.id)  # the bot did not award it
    assert not_theirs.value.response_code == 403
    their_note.awardemojis.delete(award.id)
    assert note.awardemojis.list() == []
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        issue.notes.get(note.id + 100).awardemojis.list()


def test_a_guest_may_award_and_the_emoji_hook_says_so(fast_sim: RunningSim) -> None:
    project_id = make_project(fast_sim)
    guest = add_user(fast_sim, "guest", project_id, GUEST)
    with Receiver() as receiver:
        hooks_of(fast_sim, project_id).create({"url": receiver.url, "emoji_events": True})
        issue = client(fast_sim).projects.get(project_id).issues.create({"title": "Plan"})
        note = issue.notes.create({"body": "the plan"})
        theirs = client(fast_sim, guest).projects.get(project_id, lazy=True)
        award = theirs.issues.get(issue.iid, lazy=True).notes.get(note.id).awardemojis
        made = award.create({"name": "thumbsup"})
        delivery = receiver.wait_for(1)[0]
        assert delivery.headers["X-Gitlab-Event"] == "Emoji Hook"
        body = delivery.body
        assert (body["object_kind"], body["event_type"]) == ("emoji", "award")
        assert body["user"]["username"] == "guest"
        attributes = body["object_attributes"]
        assert (attributes["name"], attributes["awardable_type"]) == ("thumbsup", "Note")
        assert (attributes["awardable_id"], attributes["id"]) == (note.id, made.id)
        assert body["note"]["id"] == note.id and body["issue"]["iid"] == issue.iid
        parsed = parse_event(body, uuid="u-1", received_at=datetime.now(UTC))
        assert isinstance(parsed, EmojiEvent) and wakes_gates(parsed)
        assert (parsed.name, parsed.awardable_id, parsed.target_iid) == (
            "thumbsup",
            note.id,
            issue.iid,
        )
        award.delete(made.id)
        revoked = receiver.wait_for(2)[1].body
        assert (revoked["event_type"], revoked["object_attributes"]["id"]) == ("revoke", made.id)


def test_approval_actions_of_merge_request_hooks_wake_the_gates() -> None:
    for action, wakes in (("approved", True), ("approval", True), ("unapproved", True),
                          ("update", False), ("open", False)):  # fmt: skip
        payload = merge_request_payload()
        payload["object_attributes"]["action"] = action
        parsed = parse_event(payload, uuid=None, received_at=datetime.now(UTC))
        assert isinstance(parsed, MergeRequestEvent) and wakes_gates(parsed) is wakes


def test_approving_and_unapproving_send_merge_request_hooks_as_gitlab_does(
    fast_sim: RunningSim,
) -> None:
    """GitLab's merge request hook says ``approval`` for an approval short of the required
    number, ``approved`` for the one that reaches it, and ``unapproval`` / ``unapproved``
    for taking one back (``unapproved`` when the MR is no longer approved)."""
    repo = make_repo(fast_sim)
    repo.feature("feature/a", {"a.txt": "one\n"})
    with Receiver() as receiver:
        repo.root.hooks.create({"url": receiver.url, "merge_requests_events": True})
        mr = repo.bot.mergerequests.create(
            {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
        )
        mr.approvals.update(new_data={"approvals_required": 2})
        mine = repo.bot.mergerequests.get(mr.iid)
        theirs = repo.maintainer.mergerequests.get(mr.iid)
        steps = [mine.approve, theirs.approve, theirs.unapprove, mine.unapprove]
        # GitLab delivers hooks concurrently, in no promised order: each step's hook is
        # awaited before the next step, so each hook is known to be its step's.
        receiver.wait_for(1)  # the "open"
        for sent, step in enumerate(steps, start=2):
            step()
            receiver.wait_for(sent)
        deliveries = receiver.wait_for(1 + len(steps))
    bodies = [delivery.body for delivery in deliveries]
    assert {d.headers["X-Gitlab-Event"] for d in deliveries} == {"Merge Request Hook"}
    assert [(b["object_kind"], b["object_attributes"]["action"]) for b in bodies] == [
        ("merge_request", "open"),
        ("merge_request", "approval"),  # 1 of 2
        ("merge_request", "approved"),  # 2 of 2
        ("merge_request", "unapproved"),  # back to 1 of 2: no longer approved
        ("merge_request", "unapproval"),  # 0 of 2
    ]
    assert [b["user"]["username"] for b in bodies[1:]] == [
        "crewline-bot", "maintainer", "maintainer", "crewline-bot",
    ]  # fmt: skip
    assert {b["object_attributes"]["iid"] for b in bodies} == {mr.iid}
    parsed = [parse_event(b, uuid=None, received_at=datetime.now(UTC)) for b in bodies]
    assert [wakes_gates(event) for event in parsed] == [False, True, True, True, True]
