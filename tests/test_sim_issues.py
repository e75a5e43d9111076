"""Simulator labels and issues, driven by python-gitlab over loopback HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from sim.core.base import GUEST, REPORTER
from sim.issues.labels import DEFAULT_COLOR
from tests.support.sim_issues import ROOT_TOKEN, add_user, client, make_project

ISSUE_FIELDS = {
    "id", "iid", "project_id", "title", "description", "state", "created_at", "updated_at",
    "closed_at", "closed_by", "labels", "milestone", "assignees", "assignee", "author", "type",
    "user_notes_count", "merge_requests_count", "upvotes", "downvotes", "due_date",
    "confidential", "discussion_locked", "issue_type", "web_url", "time_stats",
    "task_completion_status", "blocking_issues_count", "has_tasks", "_links", "references",
    "severity", "subscribed", "moved_to_id",
}  # fmt: skip
LABEL_FIELDS = {
    "id", "name", "color", "text_color", "description", "description_html",
    "open_issues_count", "closed_issues_count", "open_merge_requests_count", "subscribed",
    "priority", "is_project_label",
}  # fmt: skip


def api(sim: RunningSim, path: str) -> str:
    return f"{sim.base_url}/api/v4{path}"


def headers(token: str = "sim-bot-token") -> dict[str, str]:
    return {"PRIVATE-TOKEN": token}


# ---------------------------------------------------------------- labels


def test_label_create_get_update_delete(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    label = project.labels.create(
        {"name": "workflow::dev-ready", "color": "#330066", "description": "ready"}
    )
    assert set(label.attributes) >= LABEL_FIELDS
    assert (label.name, label.color, label.text_color) == (
        "workflow::dev-ready",
        "#330066",
        "#FFFFFF",
    )
    assert label.is_project_label is True

    fetched = project.labels.get("workflow::dev-ready")  # the name, URL-encoded
    assert fetched.id == label.id
    fetched.new_name = "workflow::dev-queued"
    fetched.color = "#eeeeee"
    fetched.save()
    again = project.labels.get(str(label.id))  # by id too
    assert (again.name, again.color, again.text_color, again.description) == (
        "workflow::dev-queued",
        "#eeeeee",
        "#1F1E24",
        "ready",
    )
    project.labels.update("workflow::dev-queued", {"description": "queued"})
    assert project.labels.get("workflow::dev-queued").description == "queued"

    again.delete()
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        project.labels.get("workflow::dev-queued")
    assert gone.value.response_code == 404


def test_label_errors_have_gitlab_bodies(sim: RunningSim) -> None:
    project_id = make_project(sim)
    url = api(sim, f"/projects/{project_id}/labels")
    first = requests.post(
        url, json={"name": "bug", "color": "#ff0000"}, headers=headers(), timeout=5
    )
    assert first.status_code == 201
    duplicate = requests.post(
        url, json={"name": "bug", "color": "#00ff00"}, headers=headers(), timeout=5
    )
    assert (duplicate.status_code, duplicate.json()) == (409, {"message": "Label already exists"})
    no_color = requests.post(url, json={"name": "x"}, headers=headers(), timeout=5)
    assert (no_color.status_code, no_color.json()) == (400, {"error": "color is missing"})
    bad_color = requests.post(
        url, json={"name": "x", "color": "red-ish"}, headers=headers(), timeout=5
    )
    assert bad_color.status_code == 400
    assert bad_color.json() == {"message": {"color": ["must be a valid color code"]}}
    missing = requests.get(f"{url}/nope", headers=headers(), timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Label Not Found"})


def test_labels_with_counts_and_guest_cannot_manage(sim: RunningSim) -> None:
    project_id = make_project(sim)
    project = client(sim).projects.get(project_id)
    project.labels.create({"name": "bug", "color": "#ff0000"})
    project.issues.create({"title": "a", "labels": ["bug"]})
    closed = project.issues.create({"title": "b", "labels": ["bug"]})
    closed.state_event = "close"
    closed.save()
    (listed,) = project.labels.list(with_counts=True)
    assert (listed.open_issues_count, listed.closed_issues_count) == (1, 1)

    guest = client(sim, add_user(sim, "guest", project_id, GUEST)).projects.get(
        project_id, lazy=True
    )
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as refused:
        guest.labels.create({"name": "mine", "color": "#ffffff"})
    assert refused.value.response_code == 403
    reporter_token = add_user(sim, "reporter", project_id, REPORTER)
    reporter = client(sim, reporter_token).projects.get(project_id, lazy=True)
    assert reporter.labels.create({"name": "mine", "color": "#ffffff"}).name == "mine"


# ---------------------------------------------------------------- issues: create and read


def test_issue_create_has_documented_fields_and_sequential_iids(sim: RunningSim) -> None:
    gl = client(sim)
    first_project = gl.projects.get(make_project(sim, "demo/app"))
    other_project = gl.projects.get(make_project(sim, "demo/other"))
    one = first_project.issues.create({"title": "One", "description": "first", "labels": ["bug"]})
    elsewhere = other_project.issues.create({"title": "Elsewhere"})
    two = first_project.issues.create({"title": "Two"})
    assert set(one.attributes) >= ISSUE_FIELDS
    assert (one.iid, two.iid, elsewhere.iid) == (1, 2, 1)
    assert one.id < elsewhere.id < two.id  # global ids come from one sequence
    assert one.state == "opened" and one.closed_at is None
    assert one.labels == ["bug"]
    assert one.author["username"] == "crewline-bot"
    assert one.references == {"short": "#1", "relative": "#1", "full": "demo/app#1"}
    assert one.web_url == f"{sim.base_url}/demo/app/-/issues/1"
    assert one.created_at == one.updated_at
    assert first_project.labels.get("bug").color == DEFAULT_COLOR  # created on the fly
    fetched = first_project.issues.get(1)
    assert fetched.attributes == {**one.attributes, "project_id": fetched.project_id}


def test_issue_errors(sim: RunningSim) -> None:
    project_id = make_project(sim)
    url = api(sim, f"/projects/{project_id}/issues")
    no_title = requests.post(url, json={"description": "x"}, headers=headers(), timeout=5)
    assert (no_title.status_code, no_title.json()) == (400, {"error": "title is missing"})
    anonymous = requests.get(url, timeout=5)
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "401 Unauthorized"})
    missing = requests.get(f"{url}/99", headers=headers(), timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Not found"})
    requests.post(url, json={"title": "x"}, headers=headers(), timeout=5)
    empty = requests.put(f"{url}/1", json={}, headers=headers(), timeout=5)
    assert empty.status_code == 400 and "at least one parameter" in empty.json()["error"]
    bad_state = requests.put(
        f"{url}/1", json={"state_event": "explode"}, headers=headers(), timeout=5
    )
    assert bad_state.json() == {"error": "state_event does not have a valid value"}
    bad_order = requests.get(url, params={"order_by": "color"}, headers=headers(), timeout=5)
    assert bad_order.status_code == 400
    hidden = requests.get(api(sim, "/projects/999/issues"), headers=headers(), timeout=5)
    assert hidden.json() == {"message": "404 Project Not Found"}


def test_list_filters(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    bot_id = client(sim).http_get("/user")["id"]  # type: ignore[index]
    a = project.issues.create({"title": "Fix login", "labels": ["bug", "workflow::dev-ready"]})
    b = project.issues.create(
        {"title": "Docs", "description": "login page docs", "labels": ["docs"]}
    )
    c = project.issues.create({"title": "Bare", "assignee_ids": [bot_id]})
    c.state_event = "close"
    c.save()

    def iids(**filters: object) -> list[int]:
        return [issue.iid for issue in project.issues.list(get_all=True, **filters)]

    assert iids(labels=["bug", "workflow::dev-ready"]) == [a.iid]  # AND semantics
    assert iids(labels=["bug", "docs"]) == []
    assert iids(labels="None") == [c.iid]
    assert iids(labels="Any", order_by="created_at", sort="asc") == [a.iid, b.iid]
    assert iids(**{"not[labels]": "bug"}) == [c.iid, b.iid]
    assert iids(state="closed") == [c.iid]
    assert iids(state="opened", sort="asc") == [a.iid, b.iid]
    assert iids(search="login", sort="asc") == [a.iid, b.iid]  # title and description
    assert iids(iids=[a.iid, c.iid], sort="asc") == [a.iid, c.iid]
    assert iids(assignee_id=bot_id) == [c.iid]
    assert iids(assignee_id="None", sort="asc") == [a.iid, b.iid]
    assert iids(updated_after=c.updated_at) == [c.iid]  # inclusive, as GitLab compares
    assert iids(updated_before=a.updated_at) == [a.iid]
    assert iids(created_after=b.created_at, sort="asc") == [b.iid, c.iid]
    assert iids(order_by="updated_at", sort="desc")[0] == c.iid
    assert iids(order_by="title", sort="asc") == [c.iid, b.iid, a.iid]


def test_pagination_headers_and_following(sim: RunningSim) -> None:
    project_id = make_project(sim)
    project = client(sim).projects.get(project_id)
    for n in range(5):
        project.issues.create({"title": f"issue {n}"})
    page = requests.get(
        api(sim, f"/projects/{project_id}/issues"),
        params={"per_page": 2, "sort": "asc"},
        headers=headers(),
        timeout=5,
    )
    assert [i["iid"] for i in page.json()] == [1, 2]
    assert (page.headers["X-Total"], page.headers["X-Total-Pages"]) == ("5", "3")
    assert (page.headers["X-Page"], page.headers["X-Next-Page"]) == ("1", "2")
    assert 'rel="next"' in page.headers["Link"]
    following = requests.get(page.links["next"]["url"], headers=headers(), timeout=5)
    assert [i["iid"] for i in following.json()] == [3, 4]
    listed = project.issues.list(per_page=2, get_all=True, sort="asc")
    assert [i.iid for i in listed] == [1, 2, 3, 4, 5]
    lazy = project.issues.list(per_page=2, iterator=True, sort="desc")
    assert lazy.total == 5
    assert [i.iid for i in lazy] == [5, 4, 3, 2, 1]


# ---------------------------------------------------------------- issues: update


def test_update_labels_state_and_updated_at(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    issue = project.issues.create({"title": "Work", "labels": ["a"]})
    created_at = issue.updated_at

    issue.labels = ["a", "b"]  # replace
    issue.save()
    assert issue.labels == ["a", "b"]
    assert issue.updated_at > created_at  # a label-only change still moves updated_at

    project.issues.update(issue.iid, {"add_labels": "fresh", "remove_labels": "a"})
    issue = project.issues.get(issue.iid)
    assert issue.labels == ["b", "fresh"]
    assert project.labels.get("fresh").color == DEFAULT_COLOR
    label_change = issue.updated_at

    project.issues.update(issue.iid, {"add_labels": "b"})  # already there: a no-op
    assert project.issues.get(issue.iid).updated_at == label_change

    issue.state_event = "close"
    issue.save()
    assert issue.state == "closed" and issue.closed_at is not None
    assert issue.attributes["closed_by"]["username"] == "crewline-bot"
    assert issue.updated_at > label_change
    issue.state_event = "reopen"
    issue.save()
    assert (issue.state, issue.closed_at) == ("opened", None)

    issue.title = "Work, renamed"
    issue.description = "now with words"
    issue.save()
    assert (issue.title, issue.description) == ("Work, renamed", "now with words")


def test_updated_at_is_strictly_increasing_over_rapid_changes(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    issue = project.issues.create({"title": "Hot"})
    stamps = [issue.updated_at]
    for n in range(15):
        project.issues.update(issue.iid, {"add_labels": f"l{n}"})
        stamps.append(project.issues.get(issue.iid).updated_at)
    assert stamps == sorted(set(stamps))


def test_premium_scoped_labels_are_exclusive(sim: RunningSim) -> None:
    project = client(sim).projects.get(make_project(sim))
    issue = project.issues.create({"title": "x", "labels": ["workflow::pm-ready", "bug"]})
    project.issues.update(issue.iid, {"add_labels": "workflow::pm-running"})
    assert project.issues.get(issue.iid).labels == ["bug", "workflow::pm-running"]
    both = project.issues.create({"title": "y", "labels": ["prio::high", "prio::low"]})
    assert both.labels == ["prio::low"]  # the last one given wins
    nested = project.issues.create({"title": "z", "labels": ["team::a::x", "team::b"]})
    project.issues.update(nested.iid, {"add_labels": "team::a::y"})
    # the scope of team::a::y is team::a (last "::"), so team::b stays
    assert project.issues.get(nested.iid).labels == ["team::a::y", "team::b"]


def test_free_tier_scoped_labels_coexist(free_sim: RunningSim) -> None:
    project = client(free_sim).projects.get(make_project(free_sim))
    issue = project.issues.create({"title": "x", "labels": ["workflow::pm-ready"]})
    project.issues.update(issue.iid, {"add_labels": "workflow::pm-running"})
    assert project.issues.get(issue.iid).labels == ["workflow::pm-ready", "workflow::pm-running"]


def test_guest_can_create_but_not_label_or_edit_others(sim: RunningSim) -> None:
    project_id = make_project(sim)
    guest_token = add_user(sim, "guest", project_id, GUEST)
    guest = client(sim, guest_token).projects.get(project_id, lazy=True)
    own = guest.issues.create({"title": "From a guest", "labels": ["bug"]})
    assert own.labels == []  # GitLab ignores a Guest's labels
    own.title = "Guest edits own issue"
    own.save()
    assert own.title == "Guest edits own issue"
    theirs = client(sim).projects.get(project_id, lazy=True).issues.create({"title": "bot"})
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as refused:
        guest.issues.update(theirs.iid, {"title": "hijack"})
    assert refused.value.response_code == 403


def test_delete_needs_owner(sim: RunningSim) -> None:
    project_id = make_project(sim)
    issue = client(sim).projects.get(project_id).issues.create({"title": "doomed"})
    maintainer = client(sim, "sim-maintainer-token").projects.get(project_id, lazy=True)
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as refused:
        maintainer.issues.delete(issue.iid)
    assert refused.value.response_code == 403
    root = client(sim, ROOT_TOKEN).projects.get(project_id, lazy=True)
    root.issues.delete(issue.iid)
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        root.issues.get(issue.iid)
    encoded = requests.get(
        api(sim, f"/projects/{quote('demo/app', safe='')}/issues"), headers=headers(), timeout=5
    )
    assert encoded.json() == []


def test_concurrent_label_updates_of_one_issue_all_apply(sim: RunningSim) -> None:
    """Sixteen hosts adding labels to one issue at once: each update applies to the labels
    as they are when it is written (not as they were when it was read), none fails."""
    project_id = make_project(sim)
    issue = client(sim).projects.get(project_id).issues.create({"title": "busy"})
    url = api(sim, f"/projects/{project_id}/issues/{issue.iid}")

    def add(n: int) -> int:
        body = {"add_labels": f"shared,own-{n:02d}"}
        return requests.put(url, json=body, headers=headers(), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(add, range(16)))
    assert codes == [200] * 16
    labels = client(sim).projects.get(project_id).issues.get(issue.iid).labels
    assert sorted(labels) == sorted(["shared", *(f"own-{n:02d}" for n in range(16))])
