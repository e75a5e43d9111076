"""Approvals, merge and rebase of merge requests, and how an MR follows pushes to its
source branch.

Status codes follow GitLab's merge endpoint: 401 when the user may not merge into the
target branch, 403 when the approvals the project or the MR requires are missing (GitLab
16.0 and later; earlier versions answered 405), 405 when the MR is not mergeable otherwise
(draft, closed, conflicts, unresolved discussions the project requires resolved, a rebase
the merge method requires), 409 when ``sha`` is not the source head, 422 when git refuses
at the last moment.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import DEVELOPER, SIM_KEY, current_user, user_by_id, user_json
from sim.core.events import SimEvent
from sim.core.http import Params, created, fail, not_found, now_iso
from sim.git.errors import GitConflict, GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA
from sim.git.repos import GIT_KEY
from sim.issues.noteables import later_than
from sim.merge_requests.branches import (
    announce_push,
    delete_source_branch,
    fast_forward,
    may_merge,
    rebase_onto,
)
from sim.merge_requests.hooks import emit_merge_request_event
from sim.merge_requests.issues import close_referenced_issues
from sim.merge_requests.records import load_merge_request, mr_by_id, update_mr
from sim.merge_requests.status import detailed_merge_status
from sim.merge_requests.views import Snapshot, git_facts, single_json, snapshot

log = logging.getLogger(__name__)

__all__ = ["may_merge", "setup_routes"]


def _check_sha(params: Params, head_sha: str | None) -> None:
    sha = params.get_str("sha")
    if sha and sha != head_sha:
        fail(409, f"SHA does not match HEAD of source branch: {head_sha}")


# ---------------------------------------------------------------- approvals


def approvals_json(
    app: web.Application, project: sqlite3.Row, mr: sqlite3.Row, snap: Snapshot, user: sqlite3.Row
) -> dict[str, Any]:
    sim = app[SIM_KEY]
    approver_ids = {int(row["id"]) for row in snap.approved_by}
    left = snap.approvals_left
    # Premium answers ``approved`` from the rules (nothing left); Free once anyone approved.
    approved = left == 0 if sim.premium else bool(approver_ids)
    return {
        "id": mr["id"],
        "iid": mr["iid"],
        "project_id": project["id"],
        "title": mr["title"],
        "description": mr["description"],
        "state": mr["state"],
        "created_at": mr["created_at"],
        "updated_at": mr["updated_at"],
        "merge_status": "can_be_merged" if not snap.git.has_conflicts else "cannot_be_merged",
        "approved": approved,
        "approvals_required": snap.approvals_required,
        "approvals_left": left,
        "require_password_to_approve": False,
        "approved_by": [
            {"user": user_json(sim, row), "approved_at": row["approved_at"]}
            for row in snap.approved_by
        ],
        "suggested_approvers": [],
        "approvers": [],
        "approver_groups": [],
        "user_has_approved": int(user["id"]) in approver_ids,
        "user_can_approve": int(user["id"]) not in approver_ids and mr["state"] == "opened",
        "approval_rules_left": [],
        "has_approval_rules": snap.approvals_required > 0,
        "merge_request_approvers_available": sim.premium,
        "multiple_approval_rules_available": sim.premium,
        "invalid_approvers_rules": [],
    }


async def get_approvals(request: web.Request) -> web.Response:
    project, mr = await load_merge_request(request)
    snap = await snapshot(request.app, project, mr)
    return web.json_response(approvals_json(request.app, project, mr, snap, current_user(request)))


async def set_approvals_required(request: web.Request) -> web.Response:
    """``POST /approvals`` with ``approvals_required``: the MR's own requirement."""
    sim = request.app[SIM_KEY]
    project, mr = await load_merge_request(request, DEVELOPER)
    params = await Params.of(request)
    required = params.get_int("approvals_required")
    if required is None:
        fail(400, "approvals_required is missing", key="error")
    if required < 0:
        fail(400, "approvals_required is invalid", key="error")
    async with sim.store.write() as conn:
        await update_mr(conn, int(mr["id"]), {"approvals_required": required})
    mr = await mr_by_id(sim, int(mr["id"]))
    snap = await snapshot(request.app, project, mr)
    return created(approvals_json(request.app, project, mr, snap, current_user(request)))


async def approve(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    project, mr = await load_merge_request(request, DEVELOPER)
    user = current_user(request)
    params = await Params.of(request)
    before = await snapshot(app, project, mr)
    already = any(int(row["id"]) == int(user["id"]) for row in before.approved_by)
    _check_sha(params, before.git.head_sha)
    if mr["state"] != "opened" or already:
        fail(401, "401 Unauthorized")  # GitLab: the approval service refuses (again)
    async with sim.store.write() as conn:
        await conn.execute(
            "INSERT INTO mr_approvals (merge_request_id, user_id, sha, created_at)"
            " VALUES (?, ?, ?, ?)",
            (mr["id"], user["id"], before.git.head_sha, now_iso()),
        )
    after = await snapshot(app, project, mr)
    action = "approved" if after.approvals_left == 0 else "approval"
    await emit_merge_request_event(app, project, int(mr["id"]), user, action)
    return created(approvals_json(app, project, mr, after, user))


async def unapprove(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    project, mr = await load_merge_request(request, DEVELOPER)
    user = current_user(request)
    before = await snapshot(app, project, mr)
    if not any(int(row["id"]) == int(user["id"]) for row in before.approved_by):
        not_found()
    async with sim.store.write() as conn:
        await conn.execute(
            "DELETE FROM mr_approvals WHERE merge_request_id = ? AND user_id = ?",
            (mr["id"], user["id"]),
        )
    after = await snapshot(app, project, mr)
    lost = before.approvals_left == 0 and after.approvals_left > 0
    await emit_merge_request_event(
        app, project, int(mr["id"]), user, "unapproved" if lost else "unapproval"
    )
    return created(approvals_json(app, project, mr, after, user))


# ---------------------------------------------------------------- merge


def _merge_message(project: sqlite3.Row, mr: sqlite3.Row) -> str:
    """GitLab's default merge commit message template."""
    parts = [f"Merge branch '{mr['source_branch']}' into '{mr['target_branch']}'", mr["title"]]
    if mr["description"]:
        parts.append(mr["description"])
    parts.append(f"See merge request {project['namespace']}/{project['path']}!{mr['iid']}")
    return "\n\n".join(parts)


async def merge(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    repos = app[GIT_KEY]
    project, mr = await load_merge_request(request)
    user = current_user(request)
    if not await may_merge(app, project, user, mr["target_branch"]):
        fail(401, "401 Unauthorized")
    params = await Params.of(request)
    snap = await snapshot(app, project, mr)
    status = detailed_merge_status(snap.facts(mr))
    if status == "not_approved":
        left = snap.approvals_left
        fail(403, f"403 Forbidden - Merge request requires {left} more approval(s)")
    if status != "mergeable":
        fail(405, "405 Method Not Allowed")
    _check_sha(params, snap.git.head_sha)
    head, target_sha = snap.git.head_sha, snap.git.target_sha
    assert head is not None and target_sha is not None  # mergeable implies both branches
    squash = params.get_bool("squash", bool(mr["squash"]))
    try:
        if snap.settings.merge_method == "ff" and not squash:
            new_target = await fast_forward(repos, project, mr["target_branch"], target_sha, head)
        else:
            message = params.get_str("merge_commit_message") or (
                params.get_str("squash_commit_message") if squash else None
            )
            new_target = await repos.merge(
                project,
                source=head,
                target=mr["target_branch"],
                message=message or (mr["title"] if squash else _merge_message(project, mr)),
                author_name=user["name"],
                author_email=user["email"],
                squash=squash,
                expected_target_sha=target_sha,
            )
    except (GitConflict, GitStaleRef, GitError) as error:
        log.info("merge of %s!%s refused by git: %s", project["path"], mr["iid"], error)
        fail(422, "Branch cannot be merged")
    await announce_push(app, project, user, mr["target_branch"], target_sha, new_target)
    remove = params.get_bool("should_remove_source_branch", bool(mr["remove_source_branch"]))
    async with sim.store.write() as conn:
        await update_mr(
            conn,
            int(mr["id"]),
            {
                "state": "merged",
                "merged_by_id": user["id"],
                "merged_at": now_iso(),
                "updated_at": later_than(mr["updated_at"]),
                "merge_commit_sha": new_target,
                "squash_commit_sha": new_target if squash else None,
                "squash": squash,
                "head_sha": head,
                "base_sha": snap.git.base_sha,
                "start_sha": target_sha,
            },
        )
    if remove:
        await delete_source_branch(app, project, user, mr["source_branch"], head)
    await close_referenced_issues(app, project, user, f"{mr['title']}\n{mr['description']}")
    await emit_merge_request_event(app, project, int(mr["id"]), user, "merge")
    merged = await mr_by_id(sim, int(mr["id"]))
    return web.json_response(await single_json(request, project, merged))


# ---------------------------------------------------------------- rebase


async def rebase(request: web.Request) -> web.Response:
    """GitLab rebases in the background and answers 202; the simulator finishes first, so
    the next read already shows the new head (or ``merge_error`` when it conflicted)."""
    app = request.app
    sim = app[SIM_KEY]
    project, mr = await load_merge_request(request, DEVELOPER)
    user = current_user(request)
    if mr["state"] != "opened":
        fail(403, "403 Forbidden")
    facts = await git_facts(app, project, mr)
    if facts.head_sha is None or facts.target_sha is None or not facts.branches_exist:
        fail(403, "403 Forbidden")
    error: str | None = None
    try:
        new_head = await rebase_onto(
            app, project, user, mr["source_branch"], facts.head_sha, facts.target_sha
        )
    except GitConflict as conflict:
        error, new_head = f"Rebase failed: {conflict}", None
    async with sim.store.write() as conn:
        await update_mr(conn, int(mr["id"]), {"merge_error": error})
    if new_head is not None and new_head != facts.head_sha:
        await follow_source_push(app, project, mr["source_branch"], facts.head_sha, new_head, user)
    return web.json_response({"rebase_in_progress": True}, status=202)


# ---------------------------------------------------------------- following pushes


async def follow_source_push(
    app: web.Application,
    project: sqlite3.Row,
    branch: str,
    before: str,
    after: str,
    user: sqlite3.Row,
) -> None:
    """Move every open MR from ``branch`` to its new head and announce an ``update`` with
    ``oldrev``. An MR already at ``after`` is left alone, so a repeated push event (or the
    event of a rebase this module already followed) announces nothing twice."""
    sim = app[SIM_KEY]
    rows = await sim.store.fetchall(
        "SELECT * FROM merge_requests WHERE project_id = ? AND source_branch = ?"
        " AND state = 'opened'",
        (project["id"], branch),
    )
    for mr in rows:
        if mr["head_sha"] == after:
            continue
        oldrev = mr["head_sha"] or before
        facts = await git_facts(app, project, mr)
        async with sim.store.write() as conn:
            await update_mr(
                conn,
                int(mr["id"]),
                {
                    "head_sha": after,
                    "base_sha": facts.base_sha,
                    "start_sha": facts.target_sha,
                    "updated_at": later_than(mr["updated_at"]),
                },
            )
        await emit_merge_request_event(app, project, int(mr["id"]), user, "update", oldrev=oldrev)


def _on_push(app: web.Application) -> Any:
    async def handle(event: SimEvent) -> None:
        payload = event.payload
        ref = str(payload.get("ref", ""))
        after = str(payload.get("after", ZERO_SHA))
        if not ref.startswith("refs/heads/") or after == ZERO_SHA:
            return
        sim = app[SIM_KEY]
        project = await sim.store.fetchone(
            "SELECT * FROM projects WHERE id = ?", (event.project_id,)
        )
        user = await user_by_id(sim, int(payload.get("user_id") or 0))
        if project is None or user is None:
            return
        branch = ref[len("refs/heads/") :]
        await follow_source_push(app, project, branch, str(payload.get("before")), after, user)

    return handle


def setup_routes(app: web.Application, base: str) -> None:
    r = app.router
    r.add_get(f"{base}/{{iid}}/approvals", get_approvals)
    r.add_post(f"{base}/{{iid}}/approvals", set_approvals_required)
    r.add_post(f"{base}/{{iid}}/approve", approve)
    r.add_post(f"{base}/{{iid}}/unapprove", unapprove)
    r.add_put(f"{base}/{{iid}}/merge", merge)
    r.add_put(f"{base}/{{iid}}/rebase", rebase)
    app[SIM_KEY].events.subscribe("push", _on_push(app))
