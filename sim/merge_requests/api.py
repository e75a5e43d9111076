"""Merge requests: create, list, get, update, changes/diffs/commits, and the project's merge
settings. Discussions live in :mod:`sim.merge_requests.discussions`; approvals, merge, rebase and
the reaction to pushes in :mod:`sim.merge_requests.merge`. This module is the route module the
app loads: its ``setup`` installs all three.

Differences from GitLab worth knowing: mergeability is computed synchronously (never
``checking``/``unchecked``); ``PUT /projects/:id`` only accepts the merge settings
(``merge_method``, ``only_allow_merge_if_pipeline_succeeds``,
``only_allow_merge_if_all_discussions_are_resolved``, ``approvals_before_merge``,
``remove_source_branch_after_merge``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    DEVELOPER,
    SIM_KEY,
    Sim,
    current_user,
    load_project,
    user_by_id,
)
from sim.core.http import Params, created, fail, now_iso
from sim.git.repos import GIT_KEY
from sim.issues.noteables import later_than
from sim.merge_requests import discussions as mr_discussions
from sim.merge_requests import merge as mr_merge
from sim.merge_requests.changes import get_changes, list_commits, list_diffs
from sim.merge_requests.hooks import emit_merge_request_event
from sim.merge_requests.labels import apply_label_params, label_changes
from sim.merge_requests.listing import list_merge_requests
from sim.merge_requests.records import (
    SCHEMA as RECORDS_SCHEMA,
)
from sim.merge_requests.records import (
    assignee_ids_of,
    labels_of,
    load_merge_request,
    merge_settings,
    mr_by_id,
    open_mr_for_source,
    update_mr,
)
from sim.merge_requests.settings import update_project_settings
from sim.merge_requests.status import draft_title, is_draft_title
from sim.merge_requests.views import (
    CACHE_KEY,
    GitFactsCache,
    git_facts,
    single_json,
)

SCHEMA = RECORDS_SCHEMA


# ---------------------------------------------------------------- create


async def _branch_exists(app: web.Application, project: sqlite3.Row, branch: str) -> bool:
    return branch in await app[GIT_KEY].branches(project)


def _duplicate_source(iid: int) -> web.HTTPException:
    return _validate_branches(
        f"Another open merge request already exists for this source branch: !{iid}"
    )


def _validate_branches(message: str) -> web.HTTPException:
    """GitLab's 409 for branch validation errors: ``{"message": [<message>]}``."""
    return web.HTTPConflict(
        text=json.dumps({"message": [message]}), content_type="application/json"
    )


async def _existing_user_ids(app: web.Application, ids: list[int]) -> list[int]:
    sim = app[SIM_KEY]
    return [i for i in dict.fromkeys(ids) if await user_by_id(sim, i) is not None]


async def _assignees_param(app: web.Application, params: Params) -> list[int] | None:
    ids = params.get_int_list("assignee_ids")
    if ids is None and params.has("assignee_id"):
        one = params.get_int("assignee_id")
        ids = [one] if one else []
    return None if ids is None else await _existing_user_ids(app, ids)


async def create_merge_request(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    project = await load_project(request, DEVELOPER)
    user = current_user(request)
    params = await Params.of(request)
    title = params.required("title")
    source = params.required("source_branch")
    target = params.required("target_branch")
    if params.get_bool("draft"):
        title = draft_title(title, True)
    if source == target:
        raise _validate_branches("You can't use same project/branch for source and target")
    for name, branch in (("source_branch", source), ("target_branch", target)):
        if not await _branch_exists(app, project, branch):
            fail(400, {name: ["does not exist"]})
    labels = await apply_label_params(sim, int(project["id"]), [], params)
    assignees = await _assignees_param(app, params) or []
    settings = await merge_settings(sim, int(project["id"]))
    remove_source = params.get_bool(
        "remove_source_branch", settings.remove_source_branch_after_merge
    )
    repos = app[GIT_KEY]
    head, start = await repos.resolve(project, source), await repos.resolve(project, target)
    base = await repos.merge_base(project, start or "", head or "") if head and start else None
    stamp = now_iso()
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "SELECT iid FROM merge_requests WHERE project_id = ? AND source_branch = ?"
            " AND state = 'opened' ORDER BY iid LIMIT 1",
            (project["id"], source),
        )
        duplicate = await cur.fetchone()
        if duplicate is not None:
            raise _duplicate_source(int(duplicate[0]))
        cur = await conn.execute(
            "SELECT COALESCE(MAX(iid), 0) + 1 FROM merge_requests WHERE project_id = ?",
            (project["id"],),
        )
        row = await cur.fetchone()
        iid = int(row[0]) if row else 1
        cur = await conn.execute(
            "INSERT INTO merge_requests (project_id, iid, title, description, source_branch,"
            " target_branch, head_sha, base_sha, start_sha, author_id, assignee_ids, labels,"
            " remove_source_branch, squash, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                project["id"],
                iid,
                title,
                params.get_str("description", "") or "",
                source,
                target,
                head,
                base,
                start,
                user["id"],
                json.dumps(assignees),
                json.dumps(labels),
                int(remove_source),
                int(params.get_bool("squash")),
                stamp,
                stamp,
            ),
        )
        mr_id = int(cur.lastrowid or 0)
    await emit_merge_request_event(app, project, mr_id, user, "open")
    mr = await mr_by_id(sim, mr_id)
    return created(await single_json(request, project, mr))


# ---------------------------------------------------------------- read


async def get_merge_request(request: web.Request) -> web.Response:
    project, mr = await load_merge_request(request)
    return web.json_response(await single_json(request, project, mr))


# ---------------------------------------------------------------- update


_UPDATE_FIELDS = (
    "title",
    "description",
    "labels",
    "add_labels",
    "remove_labels",
    "state_event",
    "draft",
    "target_branch",
    "assignee_id",
    "assignee_ids",
    "remove_source_branch",
    "squash",
    "discussion_locked",
    "milestone_id",
    "reviewer_ids",
)


def _change(changes: dict[str, Any], name: str, previous: Any, current: Any) -> None:
    if previous != current:
        changes[name] = {"previous": previous, "current": current}


async def update_merge_request(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    project, mr = await load_merge_request(request, DEVELOPER)
    user = current_user(request)
    params = await Params.of(request)
    if not any(params.has(name) for name in _UPDATE_FIELDS):
        fail(
            400,
            f"{', '.join(_UPDATE_FIELDS)} are missing, at least one parameter must be provided",
            key="error",
        )
    fields: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    # The state event is checked first: a refused reopen must not leave new labels behind.
    action = await _state_event(app, project, mr, params, user, fields)
    title = mr["title"]
    if params.has("title"):
        title = params.get_str("title") or ""
        if not title.strip():
            fail(400, "title is empty", key="error")
    if params.has("draft"):
        title = draft_title(title, params.get_bool("draft"))
    _change(changes, "title", mr["title"], title)
    _change(changes, "draft", is_draft_title(mr["title"]), is_draft_title(title))
    fields["title"] = title
    if params.has("description"):
        fields["description"] = params.get_str("description") or ""
        _change(changes, "description", mr["description"], fields["description"])
    if params.has("target_branch"):
        target = params.get_str("target_branch") or ""
        if target == mr["source_branch"]:
            raise _validate_branches("You can't use same project/branch for source and target")
        if not await _branch_exists(app, project, target):
            fail(400, {"target_branch": ["does not exist"]})
        fields["target_branch"] = target
        _change(changes, "target_branch", mr["target_branch"], target)
    old_labels = labels_of(mr)
    new_labels = await apply_label_params(sim, int(project["id"]), old_labels, params)
    fields["labels"] = json.dumps(new_labels)
    changes.update(await label_changes(sim, int(project["id"]), old_labels, new_labels))
    assignees = await _assignees_param(app, params)
    if assignees is not None:
        fields["assignee_ids"] = json.dumps(assignees)
        _change(changes, "assignees", assignee_ids_of(mr), assignees)
    for flag in ("remove_source_branch", "squash"):
        if params.has(flag):
            fields[flag] = params.get_bool(flag)
            _change(changes, flag, bool(mr[flag]), fields[flag])
    changed = bool(changes) or action != "update"
    if changed:
        fields["updated_at"] = later_than(mr["updated_at"])
        _change(changes, "updated_at", mr["updated_at"], fields["updated_at"])
    async with sim.store.write() as conn:
        if action == "reopen":
            cur = await conn.execute(
                "SELECT iid FROM merge_requests WHERE project_id = ? AND source_branch = ?"
                " AND state = 'opened' AND id != ?",
                (project["id"], mr["source_branch"], mr["id"]),
            )
            duplicate = await cur.fetchone()
            if duplicate is not None:
                raise _duplicate_source(int(duplicate[0]))
        await update_mr(conn, int(mr["id"]), fields)
    if changed:
        await emit_merge_request_event(app, project, int(mr["id"]), user, action, changes=changes)
    return web.json_response(
        await single_json(request, project, await mr_by_id(sim, int(mr["id"])))
    )


async def _state_event(
    app: web.Application,
    project: sqlite3.Row,
    mr: sqlite3.Row,
    params: Params,
    user: sqlite3.Row,
    fields: dict[str, Any],
) -> str:
    """Apply ``state_event`` to ``fields``; the webhook action to announce. As on GitLab, a
    state event that does not apply (closing a merged MR) is ignored."""
    event = params.get_str("state_event")
    if event is None:
        return "update"
    if event not in ("close", "reopen"):
        fail(400, "state_event does not have a valid value", key="error")
    if event == "close" and mr["state"] == "opened":
        facts = await git_facts(app, project, mr)
        fields.update(
            state="closed",
            closed_at=now_iso(),
            closed_by_id=user["id"],
            head_sha=facts.head_sha,
            base_sha=facts.base_sha,
            start_sha=facts.target_sha,
        )
        return "close"
    if event == "reopen" and mr["state"] == "closed":
        duplicate = await open_mr_for_source(app[SIM_KEY], int(project["id"]), mr["source_branch"])
        if duplicate is not None:
            raise _duplicate_source(int(duplicate["iid"]))
        fields.update(state="opened", closed_at=None, closed_by_id=None)
        return "reopen"
    return "update"


def setup(app: web.Application, sim: Sim) -> None:
    app[CACHE_KEY] = GitFactsCache()
    r = app.router
    base = f"{API}/projects/{{id}}/merge_requests"
    r.add_put(f"{API}/projects/{{id}}", update_project_settings)
    r.add_get(base, list_merge_requests)
    r.add_post(base, create_merge_request)
    r.add_get(f"{base}/{{iid}}", get_merge_request)
    r.add_put(f"{base}/{{iid}}", update_merge_request)
    r.add_get(f"{base}/{{iid}}/changes", get_changes)
    r.add_get(f"{base}/{{iid}}/diffs", list_diffs)
    r.add_get(f"{base}/{{iid}}/commits", list_commits)
    mr_discussions.setup_routes(app, base)
    mr_merge.setup_routes(app, base)
