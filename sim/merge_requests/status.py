"""Pure merge-request rules: draft titles, closing references, and mergeability.

Nothing here does I/O. The route modules gather the facts (git state, discussions,
approvals, pipeline) and these functions turn them into GitLab's answers, so the rules
can be read, and tested, in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MERGE_METHODS = ("merge", "rebase_merge", "ff")

# GitLab recognises these title prefixes as "draft" (case-insensitive, repeatable).
_DRAFT_PREFIX = re.compile(
    r"^\s*(?:(?:\[draft\]|\(draft\)|draft:|draft\s+-\s+)\s*)+", re.IGNORECASE
)

# GitLab's default closing pattern, restricted to same-project references (#12, issue #12).
_ISSUE_REF = r"(?:issues?\s+)?#(\d+)"
_CLOSING = re.compile(
    r"\b(?:clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?)"
    r":?\s+" + _ISSUE_REF + r"((?:(?:\s*,\s*|\s*,?\s+and\s+)" + _ISSUE_REF + r")*)",
    re.IGNORECASE,
)
_MORE_REFS = re.compile(_ISSUE_REF, re.IGNORECASE)


def is_draft_title(title: str) -> bool:
    return _DRAFT_PREFIX.match(title) is not None


def draft_title(title: str, draft: bool) -> str:
    """The title with GitLab's ``Draft: `` prefix added or every draft prefix removed."""
    bare = _DRAFT_PREFIX.sub("", title, count=1)
    return f"Draft: {bare}" if draft else bare


def closing_issue_iids(text: str) -> list[int]:
    """Issue iids that ``text`` closes on merge (``Closes #1``, ``fixes #2 and #3``), in order,
    without repeats."""
    found: list[int] = []
    for match in _CLOSING.finditer(text or ""):
        iids = [int(match.group(1))]
        iids.extend(int(ref) for ref in _MORE_REFS.findall(match.group(2) or ""))
        found.extend(iid for iid in iids if iid not in found)
    return found


@dataclass(frozen=True)
class MergeFacts:
    """Everything GitLab's merge checks look at, already gathered."""

    state: str  # opened | closed | merged
    draft: bool
    source_branch_exists: bool
    has_commits: bool  # the source head differs from the merge base
    has_conflicts: bool
    behind_target: bool  # the target head is not an ancestor of the source head
    merge_method: str  # merge | rebase_merge | ff
    discussions_must_be_resolved: bool
    unresolved_discussions: bool
    approvals_left: int
    pipeline_must_succeed: bool
    pipeline_status: str | None  # of the head pipeline, None when there is none


_PIPELINE_RUNNING = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled"}
)


def needs_rebase(facts: MergeFacts) -> bool:
    """Only fast-forward and semi-linear projects demand a rebase when the target moved."""
    return facts.merge_method != "merge" and facts.behind_target


def detailed_merge_status(facts: MergeFacts) -> str:
    """The first failing check in GitLab's order, or ``mergeable``.

    Order: not_open, draft_status, commits_status, discussions_not_resolved, ci_still_running /
    ci_must_pass, not_approved, conflict, need_rebase. Discussions and pipelines only count
    when the project demands them (both off by default, as on GitLab); approvals count when
    more are required than given.
    """
    if facts.state != "opened":
        return "not_open"
    if facts.draft:
        return "draft_status"
    if not facts.source_branch_exists or not facts.has_commits:
        return "commits_status"
    if facts.discussions_must_be_resolved and facts.unresolved_discussions:
        return "discussions_not_resolved"
    if facts.pipeline_must_succeed and facts.pipeline_status != "success":
        return "ci_still_running" if facts.pipeline_status in _PIPELINE_RUNNING else "ci_must_pass"
    if facts.approvals_left > 0:
        return "not_approved"
    if facts.has_conflicts:
        return "conflict"
    if needs_rebase(facts):
        return "need_rebase"
    return "mergeable"


def legacy_merge_status(facts: MergeFacts) -> str:
    """``merge_status``: the git-only answer older clients read."""
    if not facts.source_branch_exists:
        return "cannot_be_merged"
    return "cannot_be_merged" if facts.has_conflicts else "can_be_merged"
