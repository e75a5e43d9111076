"""What a merge request looks like right now: facts gathered from git, discussions,
approvals and pipelines, and the GitLab JSON built from them.

Git answers are cached by (source sha, target sha): commits never change, so a cached
merge check stays true for as long as both heads stay where they are.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sim.core.base import SIM_KEY, Sim, current_user, user_by_id, user_json
from sim.git.repos import GIT_KEY, GitRepos
from sim.merge_requests.branches import may_merge
from sim.merge_requests.records import (
    MergeSettings,
    approvals_required,
    approver_rows,
    assignee_ids_of,
    discussion_counts,
    labels_of,
    merge_settings,
)
from sim.merge_requests.status import (
    MergeFacts,
    detailed_merge_status,
    is_draft_title,
    legacy_merge_status,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GitFacts:
    head_sha: str | None  # the source branch head (the stored one once the MR is not open)
    target_sha: str | None
    base_sha: str | None
    branches_exist: bool
    has_conflicts: bool
    behind_target: bool

    @property
    def has_commits(self) -> bool:
        return self.head_sha is not None and self.head_sha != self.base_sha


@dataclass(frozen=True)
class _Pair:
    base_sha: str | None
    has_conflicts: bool
    behind_target: bool


class GitFactsCache:
    """Merge base, conflicts and ancestry per (project, source sha, target sha)."""

    def __init__(self, limit: int = 4096) -> None:
        self._pairs: dict[tuple[int, str, str], _Pair] = {}
        self._limit = limit

    async def pair(self, repos: GitRepos, project: sqlite3.Row, source: str, target: str) -> _Pair:
        key = (int(project["id"]), source, target)
        cached = self._pairs.get(key)
        if cached is not None:
            return cached
        base = await repos.merge_base(project, target, source)
        verdict = await repos.merge_check(project, source, target)
        behind = not await repos.is_ancestor(project, target, source)
        pair = _Pair(base, verdict == "cannot_be_merged", behind)
        if len(self._pairs) >= self._limit:
            self._pairs.pop(next(iter(self._pairs)))
        self._pairs[key] = pair
        return pair


CACHE_KEY = web.AppKey("mr_git_facts", GitFactsCache)


async def git_facts(app: web.Application, project: sqlite3.Row, mr: sqlite3.Row) -> GitFacts:
    """Live facts for an open MR; the stored diff refs for a closed or merged one."""
    if mr["state"] != "opened":
        return GitFacts(mr["head_sha"], mr["start_sha"], mr["base_sha"], True, False, False)
    repos = app[GIT_KEY]
    source = await repos.resolve(project, mr["source_branch"])
    target = await repos.resolve(project, mr["target_branch"])
    if source is None or target is None:
        return GitFacts(source or mr["head_sha"], target, mr["base_sha"], False, False, False)
    pair = await app[CACHE_KEY].pair(repos, project, source, target)
    return GitFacts(source, target, pair.base_sha, True, pair.has_conflicts, pair.behind_target)


async def head_pipeline(
    sim: Sim, project_id: int, sha: str | None, mr_iid: int | None = None
) -> dict[str, Any] | None:
    """The latest pipeline testing ``sha`` (on it, or MR ``mr_iid``'s merged-results pipeline
    built from it) from the pipelines module, when it is installed."""
    if sha is None:
        return None
    try:
        pipelines = importlib.import_module("sim.pipelines.api")
    except ImportError:
        return None
    finder = getattr(pipelines, "latest_pipeline_json", None)
    if finder is None:
        return None
    found: dict[str, Any] | None = await finder(sim, project_id, sha, mr_iid)
    return found


@dataclass(frozen=True)
class Snapshot:
    """Everything the JSON of one merge request depends on besides its row."""

    git: GitFacts
    settings: MergeSettings
    approved_by: list[sqlite3.Row]
    approvals_required: int
    user_notes_count: int
    unresolved_discussions: int
    pipeline: dict[str, Any] | None

    @property
    def approvals_left(self) -> int:
        return max(0, self.approvals_required - len(self.approved_by))

    def facts(self, mr: sqlite3.Row) -> MergeFacts:
        return MergeFacts(
            state=mr["state"],
            draft=is_draft_title(mr["title"]),
            source_branch_exists=self.git.branches_exist,
            has_commits=self.git.has_commits,
            has_conflicts=self.git.has_conflicts,
            behind_target=self.git.behind_target,
            merge_method=self.settings.merge_method,
            discussions_must_be_resolved=(
                self.settings.only_allow_merge_if_all_discussions_are_resolved
            ),
            unresolved_discussions=self.unresolved_discussions > 0,
            approvals_left=self.approvals_left,
            pipeline_must_succeed=self.settings.only_allow_merge_if_pipeline_succeeds,
            pipeline_status=self.pipeline["status"] if self.pipeline else None,
        )


async def snapshot(app: web.Application, project: sqlite3.Row, mr: sqlite3.Row) -> Snapshot:
    sim = app[SIM_KEY]
    settings = await merge_settings(sim, int(project["id"]))
    git = await git_facts(app, project, mr)
    notes, unresolved = await discussion_counts(sim, int(mr["id"]))
    return Snapshot(
        git=git,
        settings=settings,
        approved_by=await approver_rows(sim, int(mr["id"])),
        approvals_required=approvals_required(mr, settings),
        user_notes_count=notes,
        unresolved_discussions=unresolved,
        pipeline=await head_pipeline(sim, int(project["id"]), git.head_sha, int(mr["iid"])),
    )


async def user_or_none(sim: Sim, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    row = await user_by_id(sim, int(user_id))
    return user_json(sim, row) if row is not None else None


def mr_web_url(sim: Sim, project: sqlite3.Row, iid: int) -> str:
    return f"{sim.base_url}/{project['namespace']}/{project['path']}/-/merge_requests/{iid}"


async def mr_json(
    app: web.Application,
    project: sqlite3.Row,
    mr: sqlite3.Row,
    snap: Snapshot,
    *,
    single: bool = False,
    can_merge: bool | None = None,
) -> dict[str, Any]:
    """GitLab's ``MergeRequestBasic`` (lists) or, with ``single``, ``MergeRequest`` entity."""
    sim = app[SIM_KEY]
    facts = snap.facts(mr)
    assignees = [user for user in [await user_or_none(sim, i) for i in assignee_ids_of(mr)] if user]
    merged_by = await user_or_none(sim, mr["merged_by_id"])
    full_path = f"{project['namespace']}/{project['path']}"
    draft = facts.draft
    body: dict[str, Any] = {
        "id": mr["id"],
        "iid": mr["iid"],
        "project_id": project["id"],
        "title": mr["title"],
        "description": mr["description"],
        "state": mr["state"],
        "created_at": mr["created_at"],
        "updated_at": mr["updated_at"],
        "merged_by": merged_by,
        "merge_user": merged_by,
        "merged_at": mr["merged_at"],
        "closed_by": await user_or_none(sim, mr["closed_by_id"]),
        "closed_at": mr["closed_at"],
        "target_branch": mr["target_branch"],
        "source_branch": mr["source_branch"],
        "user_notes_count": snap.user_notes_count,
        "upvotes": 0,
        "downvotes": 0,
        "author": await user_or_none(sim, mr["author_id"]),
        "assignees": assignees,
        "assignee": assignees[0] if assignees else None,
        "reviewers": [],
        "source_project_id": project["id"],
        "target_project_id": project["id"],
        "labels": sorted(labels_of(mr)),
        "draft": draft,
        "work_in_progress": draft,
        "milestone": None,
        "merge_when_pipeline_succeeds": False,
        "merge_status": legacy_merge_status(facts),
        "detailed_merge_status": detailed_merge_status(facts),
        "sha": snap.git.head_sha,
        "merge_commit_sha": mr["merge_commit_sha"],
        "squash_commit_sha": mr["squash_commit_sha"],
        "discussion_locked": None,
        "should_remove_source_branch": bool(mr["remove_source_branch"]) or None,
        "force_remove_source_branch": bool(mr["remove_source_branch"]),
        "allow_collaboration": False,
        "allow_maintainer_to_push": False,
        "reference": f"!{mr['iid']}",
        "references": {
            "short": f"!{mr['iid']}",
            "relative": f"!{mr['iid']}",
            "full": f"{full_path}!{mr['iid']}",
        },
        "web_url": mr_web_url(sim, project, int(mr["iid"])),
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "squash": bool(mr["squash"]),
        "squash_on_merge": bool(mr["squash"]),
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_conflicts": snap.git.has_conflicts,
        "blocking_discussions_resolved": snap.unresolved_discussions == 0,
        "approvals_before_merge": mr["approvals_required"],
    }
    if single:
        body.update(
            {
                "subscribed": False,
                "changes_count": None,
                "latest_build_started_at": None,
                "latest_build_finished_at": None,
                "first_deployed_to_production_at": None,
                "pipeline": snap.pipeline,
                "head_pipeline": snap.pipeline,
                "diff_refs": diff_refs(snap.git),
                "merge_error": None,
                "rebase_in_progress": False,
                "first_contribution": False,
                "diverged_commits_count": None,
            }
        )
        if can_merge is not None:
            body["user"] = {"can_merge": can_merge}
    return body


def diff_refs(git: GitFacts) -> dict[str, str | None]:
    return {"base_sha": git.base_sha, "head_sha": git.head_sha, "start_sha": git.target_sha}


async def single_json(
    request: web.Request, project: sqlite3.Row, mr: sqlite3.Row
) -> dict[str, Any]:
    """The full ``MergeRequest`` entity as the requesting user sees it (``user.can_merge``),
    with ``changes_count`` from the live diff."""
    app = request.app
    snap = await snapshot(app, project, mr)
    allowed = await may_merge(app, project, current_user(request), mr["target_branch"])
    body = await mr_json(app, project, mr, snap, single=True, can_merge=allowed)
    refs = diff_refs(snap.git)
    if refs["base_sha"] and refs["head_sha"]:
        changes = await app[GIT_KEY].diff(project, refs["base_sha"], refs["head_sha"])
        body["changes_count"] = str(len(changes))
    return body
