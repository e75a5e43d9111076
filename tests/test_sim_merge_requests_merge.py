"""Merging simulated merge requests: permissions, sha guard, mergeability, issue closing,
rebase, and how an MR follows pushes to its source branch."""

from __future__ import annotations

import gitlab
import pytest
import requests

from sim.core.app import RunningSim
from tests.support.sim_mr import BOT_TOKEN, Repo, make_repo, mr_action, record_events


def _mr(repo: Repo, source: str = "feature/a", **extra: object) -> int:
    created = repo.bot.mergerequests.create(
        {"source_branch": source, "target_branch": "main", "title": "A", **extra}
    )
    return int(created.iid)


def _set(repo: Repo, **settings: object) -> None:
    repo.maintainer.manager.gitlab.http_put(f"/projects/{repo.root.id}", post_data=settings)


def test_maintainer_merges_and_the_referenced_issue_closes(sim: RunningSim) -> None:
    repo = make_repo(sim)
    issue = repo.root.issues.create({"title": "do a"})
    head = repo.feature("feature/a", {"a.txt": "a\n"})
    events = record_events(sim, "merge_request", "issue", "push")
    iid = _mr(repo, description=f"Closes #{issue.iid}", remove_source_branch=True)
    target_before = repo.branch_head("main")
    mr = repo.maintainer.mergerequests.get(iid)
    mr.merge(sha=head)
    assert mr.state == "merged"
    assert mr.merged_by["username"] == "maintainer" and mr.merge_user["username"] == "maintainer"
    assert mr.merged_at is not None
    new_main = repo.branch_head("main")
    assert mr.merge_commit_sha == new_main
    merge_commit = repo.root.commits.get(new_main)
    assert merge_commit.parent_ids == [target_before, head]
    assert merge_commit.message.startswith("Merge branch 'feature/a' into 'main'")
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        repo.root.branches.get("feature/a")  # removed after the merge, as asked
    after = repo.bot.mergerequests.get(iid)
    assert (after.state, after.sha, after.detailed_merge_status) == ("merged", head, "not_open")
    assert after.diff_refs["head_sha"] == head
    assert repo.root.issues.get(issue.iid).state == "closed"
    events.wait_for(mr_action("merge", iid))
    events.wait_for(
        lambda e: e.kind == "issue" and e.payload["object_attributes"]["action"] == "close"
    )
    events.wait_for(lambda e: e.kind == "push" and e.payload.get("after") == new_main)


def test_developer_cannot_merge_into_protected_main(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    iid = _mr(repo)
    response = requests.put(
        f"{sim.base_url}/api/v4/projects/{repo.root.id}/merge_requests/{iid}/merge",
        headers={"PRIVATE-TOKEN": BOT_TOKEN},
        timeout=10,
    )
    assert (response.status_code, response.json()) == (401, {"message": "401 Unauthorized"})
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
        repo.bot.mergerequests.get(iid).merge()
    assert repo.bot.mergerequests.get(iid).state == "opened"


def test_developer_merges_into_an_unprotected_branch(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.commit("develop", {"d.txt": "d\n"}, start_branch="main")
    repo.commit("feature/a", {"a.txt": "a\n"}, start_branch="develop")
    created = repo.bot.mergerequests.create(
        {"source_branch": "feature/a", "target_branch": "develop", "title": "A"}
    )
    assert created.user["can_merge"] is True
    created.merge()
    assert created.state == "merged"
    assert repo.branch_head("develop") == created.merge_commit_sha


def test_sha_mismatch_is_a_409_and_nothing_merges(sim: RunningSim) -> None:
    repo = make_repo(sim)
    head = repo.feature("feature/a", {"a.txt": "a\n"})
    iid = _mr(repo)
    main_before = repo.branch_head("main")
    with pytest.raises(gitlab.exceptions.GitlabMRClosedError) as stale:
        repo.maintainer.mergerequests.get(iid).merge(sha="0" * 40)
    assert stale.value.response_code == 409
    assert stale.value.error_message == f"SHA does not match HEAD of source branch: {head}"
    assert repo.branch_head("main") == main_before
    assert repo.bot.mergerequests.get(iid).state == "opened"


def test_detailed_merge_status_draft_conflict_and_mergeable(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"README.md": "from the feature\n"})
    iid = _mr(repo, draft=True)
    mr = repo.maintainer.mergerequests.get(iid)
    assert mr.detailed_merge_status == "draft_status"
    with pytest.raises(gitlab.exceptions.GitlabMRClosedError) as draft:
        mr.merge()
    assert draft.value.response_code == 405
    repo.bot.mergerequests.update(iid, {"draft": False})
    assert repo.bot.mergerequests.get(iid).detailed_merge_status == "mergeable"
    repo.commit("main", {"README.md": "from main\n"})
    conflicted = repo.bot.mergerequests.get(iid)
    assert conflicted.detailed_merge_status == "conflict"
    assert (conflicted.has_conflicts, conflicted.merge_status) == (True, "cannot_be_merged")
    with pytest.raises(gitlab.exceptions.GitlabMRClosedError) as conflict:
        repo.maintainer.mergerequests.get(iid).merge()
    assert conflict.value.response_code == 405
    assert conflict.value.error_message == "405 Method Not Allowed"


def test_need_rebase_when_fast_forward_only_and_the_target_moved(sim: RunningSim) -> None:
    repo = make_repo(sim)
    repo.feature("feature/a", {"a.txt": "a\n"})
    iid = _mr(repo)
    repo.commit("main", {"m.txt": "m\n"})
    assert repo.bot.mergerequests.get(iid).detailed_merge_status == "mergeable"  # merge method
    _set(repo, merge_method="ff")
    behind = repo.bot.mergerequests.get(iid)
    assert behind.detailed_merge_status == "need_rebase"
    events = record_events(sim, "merge_request")
    behind.rebase()
    rebased = repo.bot.mergerequests.get(iid)
    assert rebased.detailed_merge_status == "mergeable"
    assert rebased.sha == repo.branch_head("feature/a") != behind.sha
    assert repo.root.commits.get(rebased.sha).parent_ids == [repo.branch_head("main")]
    update = events.wait_for(mr_action("update", iid))
    assert update.payload["object_attributes"]["oldrev"] == behind.sha
    mr = repo.maintainer.mergerequests.get(iid)
    mr.merge(sha=rebased.sha)
    assert repo.branch_head("main") == rebased.sha == mr.merge_commit_sha  # fast-forwarded


def test_push_to_the_source_branch_moves_the_mr_and_announces_it(sim: RunningSim) -> None:
    repo = make_repo(sim)
    first = repo.feature("feature/a", {"a.txt": "a\n"})
    iid = _mr(repo)
    events = record_events(sim, "merge_request")
    second = repo.commit("feature/a", {"a.txt": "a\nb\n"}, as_project=repo.bot)
    assert repo.bot.mergerequests.get(iid).sha == second
    update = events.wait_for(mr_action("update", iid))
    attributes = update.payload["object_attributes"]
    assert attributes["oldrev"] == first
    assert attributes["last_commit"]["id"] == second
    assert update.payload["user"]["username"] == "crewline-bot"
    assert [c.id for c in repo.bot.mergerequests.get(iid).commits()] == [second, first]


def test_missing_approvals_answer_403_with_gitlabs_message_until_approved(
    sim: RunningSim,
) -> None:
    """GitLab 16.0+ answers 403 (no longer 405) when required approvals are missing."""
    repo = make_repo(sim)
    head = repo.feature("feature/a", {"a.txt": "a\n"})
    iid = _mr(repo)
    _set(repo, approvals_before_merge=1)
    url = f"{sim.base_url}/api/v4/projects/{repo.root.id}/merge_requests/{iid}/merge"
    response = requests.put(
        url, headers={"PRIVATE-TOKEN": "sim-maintainer-token"}, json={"sha": head}, timeout=10
    )
    assert (response.status_code, response.json()) == (
        403,
        {"message": "403 Forbidden - Merge request requires 1 more approval(s)"},
    )
    mr = repo.maintainer.mergerequests.get(iid)
    assert (mr.state, mr.detailed_merge_status) == ("opened", "not_approved")
    mr.approve(sha=head)
    mr.merge(sha=head)
    assert repo.maintainer.mergerequests.get(iid).state == "merged"
