"""Simulator issue notes, resource label events and issue links, through python-gitlab."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from sim.core.base import REPORTER
from tests.support.sim_issues import MAINTAINER_TOKEN, add_user, client, make_project

NOTE_FIELDS = {
    "id", "type", "body", "author", "created_at", "updated_at", "system", "noteable_id",
    "noteable_type", "noteable_iid", "resolvable", "confidential", "internal", "project_id",
}  # fmt: skip
EVENT_FIELDS = {"id", "user", "created_at", "resource_type", "resource_id", "label", "action"}


def test_note_create_get_list_edit_delete(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    issue = project.issues.create({"title": "Talk"})
    before = issue.updated_at
    first = issue.notes.create({"body": "first"})
    second = issue.notes.create({"body": "second"})
    assert set(first.attributes) >= NOTE_FIELDS
    assert (first.noteable_type, first.noteable_iid, first.noteable_id) == ("Issue", 1, issue.id)
    assert (first.system, first.type, first.author["username"]) == (False, None, "crewline-bot")
    assert first.id < second.id

    assert [n.body for n in issue.notes.list()] == ["second", "first"]  # default: newest first
    assert [n.body for n in issue.notes.list(sort="asc")] == ["first", "second"]
    refreshed = project.issues.get(issue.iid)
    assert refreshed.user_notes_count == 2
    assert refreshed.updated_at > before  # a comment touches the issue, as on GitLab
    assert refreshed.updated_at == second.created_at

    fetched = issue.notes.get(first.id)
    fetched.body = "first, edited"
    fetched.save()
    assert fetched.body == "first, edited" and fetched.updated_at > first.updated_at
    by_update = issue.notes.list(order_by="updated_at", sort="desc")
    assert [n.id for n in by_update] == [first.id, second.id]
    edited = project.issues.get(issue.iid).updated_at
    assert edited > refreshed.updated_at  # an edit touches the issue too (the fleet's cache)

    fetched.delete()
    assert project.issues.get(issue.iid).updated_at > edited  # and so does a delete
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        issue.notes.get(first.id)
    assert gone.value.response_code == 404
    assert project.issues.get(issue.iid).user_notes_count == 1


def test_note_errors_and_permissions(sim: RunningSim) -> None:
    project_id = make_project(sim)
    bot_project = client(sim).projects.get(project_id)
    issue = bot_project.issues.create({"title": "Talk"})
    note = issue.notes.create({"body": "the bot's"})
    url = f"{sim.base_url}/api/v4/projects/{project_id}/issues/{issue.iid}/notes"
    empty = requests.post(url, json={}, headers={"PRIVATE-TOKEN": "sim-bot-token"}, timeout=5)
    assert (empty.status_code, empty.json()) == (400, {"error": "body is missing"})
    missing = requests.get(f"{url}/999", headers={"PRIVATE-TOKEN": "sim-bot-token"}, timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Note Not Found"})

    reporter = client(sim, add_user(sim, "rep", project_id, REPORTER))
    rep_issue = reporter.projects.get(project_id, lazy=True).issues.get(issue.iid, lazy=True)
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as edit_refused:
        rep_issue.notes.update(note.id, {"body": "not mine"})
    assert edit_refused.value.response_code == 403
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as delete_refused:
        rep_issue.notes.delete(note.id)
    assert delete_refused.value.response_code == 403

    maintainer = client(sim, MAINTAINER_TOKEN).projects.get(project_id, lazy=True)
    maintainer.issues.get(issue.iid, lazy=True).notes.delete(note.id)
    assert issue.notes.list() == []


def test_note_ids_increase_across_issues(sim: RunningSim) -> None:
    gl = client(sim)
    projects = [gl.projects.get(make_project(sim, path)) for path in ("demo/a", "demo/b")]
    issues = [p.issues.create({"title": f"t{n}"}) for p in projects for n in range(2)]
    ids = [issue.notes.create({"body": f"note {n}"}).id for n in range(3) for issue in issues]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_concurrent_notes_get_unique_ids_in_commit_order(sim: RunningSim) -> None:
    project_id = make_project(sim)
    project = client(sim).projects.get(project_id)
    issues = [project.issues.create({"title": f"race {n}"}) for n in range(2)]

    def post(n: int) -> int:
        issue = (
            client(sim).projects.get(project_id, lazy=True).issues.get(issues[n % 2].iid, lazy=True)
        )
        return int(issue.notes.create({"body": f"claim {n}"}).id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(post, range(40)))
    assert len(set(ids)) == 40
    listed = [n for issue in issues for n in issue.notes.list(get_all=True, sort="asc")]
    assert sorted(n.id for n in listed) == sorted(ids)
    by_id = sorted(listed, key=lambda n: n.id)
    # a lower id was never committed later: creation times follow the id sequence
    assert [n.created_at for n in by_id] == sorted(n.created_at for n in by_id)


def test_resource_label_events_record_every_add_and_remove(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    issue = project.issues.create({"title": "x", "labels": ["workflow::pm-ready", "bug"]})
    project.issues.update(issue.iid, {"add_labels": "workflow::pm-running"})
    project.issues.update(issue.iid, {"remove_labels": "bug"})
    events = issue.resourcelabelevents.list(get_all=True)
    assert all(set(e.attributes) >= EVENT_FIELDS for e in events)
    summary = [(e.action, e.label["name"]) for e in events]
    assert summary == [
        ("add", "workflow::pm-ready"),
        ("add", "bug"),
        ("add", "workflow::pm-running"),
        ("remove", "workflow::pm-ready"),  # dropped by scoped-label exclusivity
        ("remove", "bug"),
    ]
    first = events[0]
    assert (first.resource_type, first.resource_id) == ("Issue", issue.id)
    assert first.user["username"] == "crewline-bot"
    assert set(first.label) == {"id", "name", "color", "description"}
    assert issue.resourcelabelevents.get(first.id).label["name"] == "workflow::pm-ready"


def test_issue_links_seen_from_both_sides(sim: RunningSim) -> None:
    project_id = make_project(sim)
    project = client(sim).projects.get(project_id)
    a, b, c = (project.issues.create({"title": t}) for t in ("a", "b", "c"))
    source, target = a.links.create(
        {"target_project_id": project_id, "target_issue_iid": b.iid, "link_type": "blocks"}
    )
    assert (source.iid, target.iid) == (a.iid, b.iid)
    c.links.create(
        {"target_project_id": "demo/app", "target_issue_iid": a.iid, "link_type": "is_blocked_by"}
    )
    from_a = {(link.iid, link.link_type) for link in a.links.list()}
    assert from_a == {(b.iid, "blocks"), (c.iid, "blocks")}
    (from_b,) = b.links.list()
    assert (from_b.iid, from_b.link_type) == (a.iid, "is_blocked_by")
    assert {"issue_link_id", "link_created_at", "link_updated_at"} <= set(from_b.attributes)
    assert project.issues.get(a.iid).blocking_issues_count == 2

    url = f"{sim.base_url}/api/v4/projects/{project_id}/issues/{a.iid}/links"
    again = requests.post(
        url,
        json={"target_project_id": project_id, "target_issue_iid": b.iid},
        headers={"PRIVATE-TOKEN": "sim-bot-token"},
        timeout=5,
    )
    assert (again.status_code, again.json()) == (409, {"message": "Issue(s) already assigned"})
    nowhere = requests.post(
        url,
        json={"target_project_id": project_id, "target_issue_iid": 99},
        headers={"PRIVATE-TOKEN": "sim-bot-token"},
        timeout=5,
    )
    assert nowhere.status_code == 404

    before = project.issues.get(b.iid).updated_at
    from_b.delete()
    assert b.links.list() == []
    assert [link.iid for link in a.links.list()] == [c.iid]

    # GitLab records each link change as a system note on both issues, which touches them.
    def system_notes(iid: int) -> list[str]:
        notes = project.issues.get(iid).notes.list(get_all=True, sort="asc")
        return [note.body for note in notes if note.system]

    assert system_notes(a.iid) == [
        f"marked this issue as blocking #{b.iid}",
        f"marked this issue as blocking #{c.iid}",
        f"removed the relation with #{b.iid}",
    ]
    assert system_notes(b.iid) == [
        f"marked this issue as blocked by #{a.iid}",
        f"removed the relation with #{a.iid}",
    ]
    assert project.issues.get(b.iid).updated_at > before
