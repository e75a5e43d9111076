"""Merge requests in the simulator, driven by python-gitlab over loopback HTTP: create,
list, get, update, changes, commits and the events they emit."""

from __future__ import annotations

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from tests.support.sim_mr import ROOT_TOKEN, make_repo, mr_action, record_events


def test_create_get_and_fields(sim: RunningSim) -> None:
    repo = make_repo(sim)
    head = repo.feature("feature/a", {"a.txt": "a\n"})
    events = record_events(sim, "merge_request")
    mr = repo.bot.mergerequests.create(
        {
            "source_branch": "feature/a",
            "target_branch": "main",
            "title": "Add a",
            "description": "Adds a.",
            "labels": "workflow::review-ready,crewline",
            "remove_source_branch": True,
        }
    )
    assert (mr.iid, mr.state, mr.sha, mr.draft, mr.work_in_progress) == (
        1,
        "opened",
        head,
        False,
        False,
    )
    assert mr.labels == ["crewline", "workflow::review-ready"]
    assert mr.author["username"] == "crewline-bot"
    assert mr.references["full"] == "demo/app!1"
    assert mr.web_url.endswith("/demo/app/-/merge_requests/1")
    assert mr.diff_refs == {
        "base_sha": repo.branch_head("main"),
        "head_sha": head,
        "start_sha": repo.branch_head("main"),
    }
    assert mr.changes_count == "1"
    assert (mr.merge_status, mr.detailed_merge_status, mr.has_conflicts) == (
        "can_be_merged",
        "mergeable",
        False,
    )
    assert mr.blocking_discussions_resolved is True
    assert mr.head_pipeline is None
    assert mr.force_remove_source_branch is True
    fetched = repo.maintainer.mergerequests.get(1)
    assert fetched.id == mr.id and fetched.title == "Add a"
    assert fetched.user == {"can_merge": True}
    assert repo.bot.mergerequests.get(1).user == {"can_merge": False}  # main is protected
    opened = events.wait_for(mr_action("open", 1))
    assert opened.payload["object_kind"] == "merge_request"
    assert opened.payload["object_attributes"]["last_commit"]["id"] == head
    assert [label["title"] for label in opened.payload["labels"]] == [
        "crewline",
        "workflow::review-ready",
    ]


def test_merge_request_iids_are_separate_from_issue_iids(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.root.issues.create({"title": "one"})
    repo.root.issues.create({"title": "two"})
    repo.feature("feature/a", {"a.txt": "a\n"})
    mr = repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
    )
    assert mr.iid == 1


def test_draft_by_flag_or_title_prefix(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    repo.feature("feature/b", {"b.txt": "b\n"})
    by_flag = repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A", "draft": True}
    )
    by_title = repo.bot.mergerequests.create(
        {"source_branch": "feature/b", "target_branch": "main", "title": "Draft: B"}
    )
    for mr in (by_flag, by_title):
        assert mr.draft is True and mr.work_in_progress is True
        assert mr.detailed_merge_status == "draft_status"
    assert by_flag.title == "Draft: A"
    ready = repo.bot.mergerequests.update(by_flag.iid, {"draft": False})
    assert ready["title"] == "A" and ready["draft"] is False
    assert ready["detailed_merge_status"] == "mergeable"


def test_duplicate_source_branch_is_a_409_naming_the_open_mr(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
    )
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as duplicate:
        repo.bot.mergerequests.create(
            {"source_branch": "feature/a", "target_branch": "main", "title": "again"}
        )
    assert duplicate.value.response_code == 409
    body = duplicate.value.response_body
    assert isinstance(body, bytes)
    assert b"Another open merge request already exists for this source branch: !1" in body


def test_missing_branches_and_fields_are_refused(sim: RunningSim) -> None:
    repo = make_repo(sim)
    url = f"{sim.base_url}/api/v4/projects/{repo.root.id}/merge_requests"
    headers = {"PRIVATE-TOKEN": ROOT_TOKEN}
    missing_source = requests.post(
        url,
        json={"source_branch": "nope", "target_branch": "main", "title": "x"},
        headers=headers,
        timeout=10,
    )
    assert missing_source.status_code == 400
    assert missing_source.json() == {"message": {"source_branch": ["does not exist"]}}
    no_title = requests.post(
        url, json={"source_branch": "main", "target_branch": "main"}, headers=headers, timeout=10
    )
    assert (no_title.status_code, no_title.json()) == (400, {"error": "title is missing"})
    same = requests.post(
        url,
        json={"source_branch": "main", "target_branch": "main", "title": "x"},
        headers=headers,
        timeout=10,
    )
    assert same.status_code == 409
    assert same.json() == {"message": ["You can't use same project/branch for source and target"]}


def test_list_filters_and_pagination(sim: RunningSim) -> None:
    repo = make_repo(sim)
    for name in ("a", "b", "c"):
        repo.feature(f"feature/{name}", {f"{name}.txt": name})
        repo.bot.mergerequests.create(
            {
                "source_branch": f"feature/{name}",
                "target_branch": "main",
                "title": name.upper(),
                "labels": "picked" if name != "b" else "other",
            }
        )
    repo.bot.mergerequests.update(2, {"state_event": "close"})
    listed = repo.bot.mergerequests.list(get_all=True)
    assert [mr.iid for mr in listed] == [3, 2, 1]  # newest first
    assert [mr.iid for mr in repo.bot.mergerequests.list(state="opened", get_all=True)] == [3, 1]
    assert [mr.iid for mr in repo.bot.mergerequests.list(state="closed", get_all=True)] == [2]
    by_source = repo.bot.mergerequests.list(source_branch="feature/c", get_all=True)
    assert [mr.iid for mr in by_source] == [3]
    assert [mr.iid for mr in repo.bot.mergerequests.list(labels=["picked"], get_all=True)] == [3, 1]
    assert [mr.iid for mr in repo.bot.mergerequests.list(iids=[1, 2], get_all=True)] == [2, 1]
    page = repo.bot.mergerequests.list(per_page=2, page=2, sort="asc")
    assert [mr.iid for mr in page] == [3]
    everything = repo.bot.mergerequests.list(per_page=1, iterator=True)
    assert everything.total == 3
    later = repo.bot.mergerequests.list(updated_after=listed[1].updated_at, get_all=True)
    assert 2 in [mr.iid for mr in later]
    with pytest.raises(gitlab.exceptions.GitlabListError) as bad:
        repo.bot.mergerequests.list(state="sideways")
    assert bad.value.response_code == 400


def test_update_fields_labels_and_state_events(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    repo.commit("release", {"r.txt": "r\n"}, start_branch="main")
    events = record_events(sim, "merge_request")
    repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A", "labels": "x"}
    )
    mr = repo.bot.mergerequests.get(1)
    mr.title = "Better A"
    mr.description = "now described"
    mr.save()
    updated = repo.bot.mergerequests.update(
        1, {"add_labels": "workflow::qa-ready", "remove_labels": "x", "target_branch": "release"}
    )
    assert updated["labels"] == ["workflow::qa-ready"]
    assert updated["target_branch"] == "release"
    again = repo.bot.mergerequests.update(1, {"add_labels": "workflow::merge-ready"})
    assert again["labels"] == ["workflow::merge-ready"]  # premium: scoped labels are exclusive
    closed = repo.bot.mergerequests.update(1, {"state_event": "close"})
    assert closed["state"] == "closed" and closed["closed_by"]["username"] == "crewline-bot"
    assert closed["detailed_merge_status"] == "not_open"
    reopened = repo.bot.mergerequests.update(1, {"state_event": "reopen"})
    assert reopened["state"] == "opened" and reopened["closed_at"] is None
    update = events.wait_for(
        lambda e: (
            e.payload["object_attributes"]["action"] == "update" and "title" in e.payload["changes"]
        )
    )
    assert update.payload["changes"]["title"] == {"previous": "A", "current": "Better A"}
    events.wait_for(mr_action("close", 1))
    events.wait_for(mr_action("reopen", 1))
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as bad:
        repo.bot.mergerequests.update(1, {"state_event": "explode"})
    assert bad.value.response_code == 400


def test_reopening_is_refused_while_another_mr_is_open_for_the_source(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
    )
    repo.bot.mergerequests.update(1, {"state_event": "close"})
    repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "B"}
    )
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as refused:
        repo.bot.mergerequests.update(1, {"state_event": "reopen"})
    assert refused.value.response_code == 409
    assert repo.bot.mergerequests.get(1).state == "closed"


def test_changes_diffs_and_commits(sim: RunningSim) -> None:
    repo = make_repo(sim)
    first = repo.feature("feature/a", {"a.txt": "a\n"})
    second = repo.commit("feature/a", {"README.md": "hello\nworld\n"})
    repo.commit("main", {"m.txt": "m\n"})  # the target moves on: not part of the MR
    mr = repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "main", "title": "A"}
    )
    changes = mr.changes()
    assert isinstance(changes, dict)
    by_path = {change["new_path"]: change for change in changes["changes"]}
    assert set(by_path) == {"a.txt", "README.md"}
    assert by_path["a.txt"]["new_file"] is True
    assert "+world" in by_path["README.md"]["diff"]
    assert changes["diff_refs"]["head_sha"] == second
    diffs = repo.bot.manager.gitlab.http_list(
        f"/projects/{repo.root.id}/merge_requests/1/diffs", get_all=True
    )
    assert sorted(d["new_path"] for d in diffs) == ["README.md", "a.txt"]
    assert [c.id for c in mr.commits()] == [second, first]
