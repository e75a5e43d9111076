"""The ``merge_request`` webhook payload (GitLab's "Merge Request Hook") and its emission."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import SIM_KEY, Sim, user_by_id
from sim.core.events import SimEvent
from sim.core.hook_payloads import envelope, project_hook_json, user_hook_json
from sim.git.repos import GIT_KEY
from sim.merge_requests.labels import hook_labels
from sim.merge_requests.records import assignee_ids_of, labels_of, mr_by_id
from sim.merge_requests.status import detailed_merge_status, legacy_merge_status
from sim.merge_requests.views import Snapshot, mr_web_url, snapshot

STATE_IDS = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}


async def _last_commit(app: web.Application, project: sqlite3.Row, sha: str | None) -> Any:
    if sha is None:
        return None
    info = await app[GIT_KEY].commit_info(project, sha)
    return {
        "id": info["id"],
        "message": info["message"],
        "title": info["title"],
        "timestamp": info["committed_date"],
        "url": info["web_url"],
        "author": {"name": info["author_name"], "email": info["author_email"]},
    }


async def _users(sim: Sim, ids: list[int]) -> list[dict[str, Any]]:
    rows = [await user_by_id(sim, i) for i in ids]
    return [user_hook_json(sim, row) for row in rows if row is not None]


async def mr_hook_attributes(
    app: web.Application, project: sqlite3.Row, mr: sqlite3.Row, snap: Snapshot | None = None
) -> dict[str, Any]:
    """The merge request as webhook payloads show it: the ``object_attributes`` of a
    merge_request event (without ``action``) and the ``merge_request`` of a note event."""
    sim = app[SIM_KEY]
    snap = snap or await snapshot(app, project, mr)
    facts = snap.facts(mr)
    hook_proj = project_hook_json(sim, project)
    assignee_ids = assignee_ids_of(mr)
    return {
        "id": mr["id"],
        "iid": mr["iid"],
        "title": mr["title"],
        "description": mr["description"],
        "state": mr["state"],
        "state_id": STATE_IDS[mr["state"]],
        "created_at": mr["created_at"],
        "updated_at": mr["updated_at"],
        "author_id": mr["author_id"],
        "assignee_id": assignee_ids[0] if assignee_ids else None,
        "assignee_ids": assignee_ids,
        "reviewer_ids": [],
        "source_branch": mr["source_branch"],
        "target_branch": mr["target_branch"],
        "source_project_id": project["id"],
        "target_project_id": project["id"],
        "source": hook_proj,
        "target": hook_proj,
        "last_commit": await _last_commit(app, project, snap.git.head_sha),
        "draft": facts.draft,
        "work_in_progress": facts.draft,
        "merge_status": legacy_merge_status(facts),
        "detailed_merge_status": detailed_merge_status(facts),
        "blocking_discussions_resolved": snap.unresolved_discussions == 0,
        "merge_commit_sha": mr["merge_commit_sha"],
        "merge_user_id": mr["merged_by_id"],
        "merge_when_pipeline_succeeds": False,
        "merge_params": {"force_remove_source_branch": str(int(mr["remove_source_branch"]))},
        "merge_error": None,
        "head_pipeline_id": snap.pipeline["id"] if snap.pipeline else None,
        "milestone_id": None,
        "labels": await hook_labels(sim, int(project["id"]), labels_of(mr)),
        "url": mr_web_url(sim, project, int(mr["iid"])),
        "time_estimate": 0,
        "total_time_spent": 0,
        "time_change": 0,
        "first_contribution": False,
    }


async def merge_request_payload(
    app: web.Application,
    project: sqlite3.Row,
    mr: sqlite3.Row,
    user: sqlite3.Row,
    action: str,
    *,
    changes: dict[str, Any] | None = None,
    oldrev: str | None = None,
) -> dict[str, Any]:
    """A Merge Request Hook body; ``oldrev`` is set when new commits were pushed."""
    sim = app[SIM_KEY]
    attributes = await mr_hook_attributes(app, project, mr)
    attributes["action"] = action
    if oldrev is not None:
        attributes["oldrev"] = oldrev
    body = envelope(sim, "merge_request", project, user, attributes)
    body["labels"] = attributes["labels"]
    body["changes"] = changes or {}
    body["assignees"] = await _users(sim, assignee_ids_of(mr))
    body["reviewers"] = []
    return body


async def emit_merge_request_event(
    app: web.Application,
    project: sqlite3.Row,
    mr_id: int,
    user: sqlite3.Row,
    action: str,
    *,
    changes: dict[str, Any] | None = None,
    oldrev: str | None = None,
) -> None:
    """Announce a merge request change on the bus (webhooks subscribe to ``merge_request``)."""
    mr = await mr_by_id(app[SIM_KEY], mr_id)
    payload = await merge_request_payload(
        app, project, mr, user, action, changes=changes, oldrev=oldrev
    )
    app[SIM_KEY].events.emit(SimEvent("merge_request", int(project["id"]), payload))
