"""The pure merge-request rules: draft titles, closing references, merge checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.merge_requests.status import (
    MergeFacts,
    closing_issue_iids,
    detailed_merge_status,
    draft_title,
    is_draft_title,
    legacy_merge_status,
)

READY = MergeFacts(
    state="opened",
    draft=False,
    source_branch_exists=True,
    has_commits=True,
    has_conflicts=False,
    behind_target=False,
    merge_method="merge",
    discussions_must_be_resolved=False,
    unresolved_discussions=False,
    approvals_left=0,
    pipeline_must_succeed=False,
    pipeline_status=None,
)


@pytest.mark.parametrize(
    ("title", "draft"),
    [
        ("Draft: add x", True),
        ("draft: add x", True),
        ("[Draft] add x", True),
        ("(draft) add x", True),
        ("Draft - add x", True),
        ("add draft: x", False),
        ("Drafted plan", False),
    ],
)
def test_draft_prefixes_follow_gitlab(title: str, draft: bool) -> None:
    assert is_draft_title(title) is draft


def test_draft_title_adds_and_strips_every_prefix() -> None:
    assert draft_title("add x", True) == "Draft: add x"
    assert draft_title("[Draft] Draft: add x", False) == "add x"
    assert draft_title("Draft: add x", True) == "Draft: add x"


@pytest.mark.parametrize(
    ("text", "iids"),
    [
        ("Closes #1", [1]),
        ("This fixes #2 and #3, resolves issue #4", [2, 3, 4]),
        ("closes #5, #6 and #7", [5, 6, 7]),
        ("Implements: #8", [8]),
        ("See #9; relates to #10", []),
        ("Closes #1\nCloses #1", [1]),
        ("discloses #11", []),
    ],
)
def test_closing_references(text: str, iids: list[int]) -> None:
    assert closing_issue_iids(text) == iids


def test_each_failing_check_is_reported_in_gitlab_order() -> None:
    assert detailed_merge_status(READY) == "mergeable"
    assert detailed_merge_status(replace(READY, state="merged")) == "not_open"
    assert detailed_merge_status(replace(READY, draft=True, has_conflicts=True)) == "draft_status"
    assert detailed_merge_status(replace(READY, has_commits=False)) == "commits_status"
    assert detailed_merge_status(replace(READY, source_branch_exists=False)) == "commits_status"
    assert detailed_merge_status(replace(READY, unresolved_discussions=True)) == "mergeable"
    assert (
        detailed_merge_status(
            replace(READY, unresolved_discussions=True, discussions_must_be_resolved=True)
        )
        == "discussions_not_resolved"
    )
    ci = replace(READY, pipeline_must_succeed=True)
    assert detailed_merge_status(ci) == "ci_must_pass"
    assert detailed_merge_status(replace(ci, pipeline_status="running")) == "ci_still_running"
    assert detailed_merge_status(replace(ci, pipeline_status="failed")) == "ci_must_pass"
    assert detailed_merge_status(replace(ci, pipeline_status="success")) == "mergeable"
    assert (
        detailed_merge_status(replace(READY, approvals_left=1, has_conflicts=True))
        == "not_approved"
    )
    assert (
        detailed_merge_status(replace(READY, has_conflicts=True, behind_target=True)) == "conflict"
    )


def test_need_rebase_only_for_fast_forward_and_semi_linear_projects() -> None:
    behind = replace(READY, behind_target=True)
    assert detailed_merge_status(behind) == "mergeable"
    assert detailed_merge_status(replace(behind, merge_method="ff")) == "need_rebase"
    assert detailed_merge_status(replace(behind, merge_method="rebase_merge")) == "need_rebase"


def test_legacy_merge_status_is_git_only() -> None:
    assert legacy_merge_status(replace(READY, draft=True)) == "can_be_merged"
    assert legacy_merge_status(replace(READY, has_conflicts=True)) == "cannot_be_merged"
