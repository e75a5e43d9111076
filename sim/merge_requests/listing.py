"""Listing merge requests: GitLab's filters, ordering and pagination. Only the requested
page is serialised, since each MR's JSON asks git about its branches."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import SIM_KEY, load_project
from sim.core.http import Params, fail, invalid, paginate, parse_iso
from sim.merge_requests.records import labels_of
from sim.merge_requests.status import is_draft_title
from sim.merge_requests.views import mr_json, snapshot

STATES = ("opened", "closed", "merged", "locked", "all")
ORDER_COLUMNS = {"created_at": "created_at", "updated_at": "updated_at", "title": "title"}


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
