"""Merge requests: create, list, get, update, changes/diffs/commits, and the project's merge
settings. Discussions live in :mod:`forge.sim.mr_discussions`; approvals, merge, rebase and
the reaction to pushes in :mod:`forge.sim.mr_merge`. This module is the route module the
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
from dataclasses import replace
from typing import Any

from aiohttp import web

from forge.sim import mr_discussions, mr_merge
from forge.sim.core import (
    API,
    DEVELOPER,
    MAINTAINER,
    SIM_KEY,
    access_level,
    current_user,
    load_project,
    project_json,
    user_by_id,
)
from forge.sim.git_repos import GIT_KEY, run_git
from forge.sim.http import Params, created, fail, invalid, now_iso, paginate, parse_iso
from forge.sim.mr_hooks import emit_merge_request_event
from forge.sim.mr_labels import apply_label_params, label_changes
from forge.sim.mr_records import (
    SCHEMA as RECORDS_SCHEMA,
)
from forge.sim.mr_records import (
    SETTING_NAMES,
    assignee_ids_of,
    labels_of,
    load_merge_request,
    merge_settings,
    mr_by_id,
    save_merge_settings,
    update_mr,
)
from forge.sim.mr_status import MERGE_METHODS, draft_title, is_draft_title
from forge.sim.mr_views import (
    CACHE_KEY,
    GitFactsCache,
    diff_refs,
    git_facts,
    mr_json,
    single_json,
    snapshot,
)

SCHEMA = RECORDS_SCHEMA

STATES = ("opened", "closed", "merged", "locked", "all")
ORDER_COLUMNS = {"created_at": "created_at", "updated_at": "updated_at", "title": "title"}


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


def _list_query(project_id: int, params: Params) -> tuple[str, list[Any]]:
    state = params.get_str("state", "all") or "all"
    if state not in STATES:
        fail(400, "state does not have a valid value", key="error")
    clauses: list[str] = ["project_id = ?"]
    args: list[Any] = [project_id]
    if state != "all":
        clauses.append("state = ?")
        args.append(state)
    for name in ("source_branch", "target_branch"):
        value = params.get_str(name)
        if value is not None:
            clauses.append(f"{name} = ?")
            args.append(value)
    iids = params.get_int_list("iids")
    if iids:
        clauses.append(f"iid IN ({', '.join('?' for _ in iids)})")
        args.extend(iids)
    author_id = params.get_int("author_id")
    if author_id is not None:
        clauses.append("author_id = ?")
        args.append(author_id)
    for name, op in (
        ("updated_after", ">="),
        ("updated_before", "<="),
        ("created_after", ">="),
        ("created_before", "<="),
    ):
        value = params.get_str(name)
        if value is not None:
            try:
                moment = parse_iso(value)
            except ValueError:
                invalid(name)
            clauses.append(f"julianday({name.split('_')[0]}_at) {op} julianday(?)")
            args.append(moment.isoformat())
    search = params.get_str("search")
    if search:
        clauses.append("(title LIKE ? OR description LIKE ?)")
        args.extend([f"%{search}%", f"%{search}%"])
    order = ORDER_COLUMNS.get(params.get_str("order_by", "created_at") or "created_at")
    if order is None:
        fail(400, "order_by does not have a valid value", key="error")
    sort = params.get_str("sort", "desc") or "desc"
    if sort not in ("asc", "desc"):
        fail(400, "sort does not have a valid value", key="error")
    sql = f"SELECT * FROM merge_requests WHERE {' AND '.join(clauses)} ORDER BY {order} {sort}, id {sort}"
    return sql, args


def _labels_match(mr: sqlite3.Row, wanted: list[str] | None) -> bool:
    if wanted is None:
        return True
    have = {label.lower() for label in labels_of(mr)}
    if [w.lower() for w in wanted] == ["none"]:
        return not have
    if [w.lower() for w in wanted] == ["any"]:
        return bool(have)
    return all(label.lower() in have for label in wanted)


def _page_window(request: web.Request, total: int) -> range:
    """The indices :func:`paginate` will answer with, so only those are serialised."""
    try:
        page = max(1, int(request.query.get("page", "1")))
        per_page = min(100, max(1, int(request.query.get("per_page", "20"))))
    except ValueError:
        return range(0)
    start = (page - 1) * per_page
    return range(min(start, total), min(start + per_page, total))


async def list_merge_requests(request: web.Request) -> web.Response:
    app = request.app
    sim = app[SIM_KEY]
    project = await load_project(request)
    params = await Params.of(request)
    sql, args = _list_query(int(project["id"]), params)
    rows = await sim.store.fetchall(sql, args)
    wanted = params.get_list("labels")
    rows = [row for row in rows if _labels_match(row, wanted)]
    wip = params.get_str("wip")
    if wip in ("yes", "no"):
        rows = [row for row in rows if is_draft_title(row["title"]) == (wip == "yes")]
    items: list[dict[str, Any] | None] = [None] * len(rows)
    for index in _page_window(request, len(rows)):
        mr = rows[index]
        items[index] = await mr_json(app, project, mr, await snapshot(app, project, mr))
    return paginate(request, items)


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
    action = await _state_event(app, project, mr, params, user, fields)
    changed = bool(changes) or action != "update" or len(fields) > 2
    if changed:
        fields["updated_at"] = now_iso()
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
        fields.update(state="opened", closed_at=None, closed_by_id=None)
        return "reopen"
    return "update"


# ---------------------------------------------------------------- changes, diffs, commits


async def _refs(request: web.Request) -> tuple[sqlite3.Row, sqlite3.Row, dict[str, str | None]]:
    project, mr = await load_merge_request(request)
    return project, mr, diff_refs(await git_facts(request.app, project, mr))


async def get_changes(request: web.Request) -> web.Response:
    project, mr, refs = await _refs(request)
    body = await single_json(request, project, mr)
    changes: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        changes = await request.app[GIT_KEY].diff(project, refs["base_sha"], refs["head_sha"])
    body["changes"] = changes
    body["overflow"] = False
    return web.json_response(body)


async def list_diffs(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    changes: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        changes = await request.app[GIT_KEY].diff(project, refs["base_sha"], refs["head_sha"])
    return paginate(request, changes)


async def mr_commits(
    app: web.Application, project: sqlite3.Row, base: str, head: str
) -> list[dict[str, Any]]:
    """Commits on ``head`` that ``base`` lacks, newest first (GitLab's MR commit list)."""
    repos = app[GIT_KEY]
    _, out = await run_git("rev-list", f"{base}..{head}", git_dir=await repos.ensure(project))
    wanted = set(out.decode().split())
    if not wanted:
        return []
    return [c for c in await repos.log(project, head, limit=None) if c["id"] in wanted]


async def list_commits(request: web.Request) -> web.Response:
    project, _, refs = await _refs(request)
    commits: list[dict[str, Any]] = []
    if refs["base_sha"] and refs["head_sha"]:
        commits = await mr_commits(request.app, project, refs["base_sha"], refs["head_sha"])
    return paginate(request, commits)


# ---------------------------------------------------------------- project merge settings


async def update_project_settings(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    params = await Params.of(request)
    unsupported = sorted(set(params.json()) - set(SETTING_NAMES) - {"id"})
    if unsupported:
        fail(
            400,
            f"the simulator cannot change {', '.join(unsupported)}: PUT /projects/:id accepts"
            f" only {', '.join(SETTING_NAMES)}",
            key="error",
        )
    settings = await merge_settings(sim, int(project["id"]))
    method = params.get_str("merge_method", settings.merge_method) or settings.merge_method
    if method not in MERGE_METHODS:
        fail(400, "merge_method does not have a valid value", key="error")
    approvals = params.get_int("approvals_before_merge", settings.approvals_before_merge)
    if approvals is None or approvals < 0:
        invalid("approvals_before_merge")
    settings = replace(
        settings,
        merge_method=method,
        approvals_before_merge=approvals,
        **{
            name: params.get_bool(name, getattr(settings, name))
            for name in (
                "only_allow_merge_if_pipeline_succeeds",
                "only_allow_merge_if_all_discussions_are_resolved",
                "remove_source_branch_after_merge",
            )
        },
    )
    await save_merge_settings(sim, int(project["id"]), settings)
    level = await access_level(sim, current_user(request), int(project["id"]))
    return web.json_response({**project_json(sim, project, level), **settings.as_json()})


def setup(app: web.Application, sim: object) -> None:
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
