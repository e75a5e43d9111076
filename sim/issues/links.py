"""Issue links: ``/projects/:id/issues/:iid/links`` list, get, create, delete.

A link is stored once, normalised so ``is_blocked_by`` becomes ``blocks`` in the other
direction; each side sees it from its own point of view (the blocked issue lists
``is_blocked_by``), as GitLab shows it. Creating or deleting a link needs Reporter+ on
the source project and read access to the target project (simplified from GitLab).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    GUEST,
    REPORTER,
    SIM_KEY,
    Sim,
    access_level,
    current_user,
    load_project,
    project_by_ref,
)
from sim.core.http import Params, created, fail, not_found, now_iso, paginate
from sim.issues.notes import create_note
from sim.issues.records import IssueRecord, issue_json, load_issue, load_records

SCHEMA = """
CREATE TABLE IF NOT EXISTS issue_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    target_issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    link_type TEXT NOT NULL CHECK (link_type IN ('relates_to', 'blocks')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source_issue_id, target_issue_id)
)
"""

LINK_TYPES = ("relates_to", "blocks", "is_blocked_by")


def seen_from(link: sqlite3.Row, issue_id: int) -> tuple[int, str]:
    """(the other issue's id, the link type as ``issue_id``'s side sees it)."""
    if int(link["source_issue_id"]) == issue_id:
        return int(link["target_issue_id"]), link["link_type"]
    inverse = "is_blocked_by" if link["link_type"] == "blocks" else link["link_type"]
    return int(link["source_issue_id"]), inverse


async def _project_of(sim: Sim, record: IssueRecord) -> sqlite3.Row:
    project = await project_by_ref(sim, str(record.row["project_id"]))
    assert project is not None
    return project


async def _issue_json_anywhere(sim: Sim, record: IssueRecord) -> dict[str, Any]:
    return issue_json(sim, await _project_of(sim, record), record)


async def _source(request: web.Request, min_access: int) -> tuple[Sim, IssueRecord]:
    sim = request.app[SIM_KEY]
    project = await load_project(request, min_access)
    record = await load_issue(sim, int(project["id"]), int(request.match_info["iid"]))
    if record is None:
        not_found()
    return sim, record


async def _link_body(sim: Sim, link: sqlite3.Row) -> dict[str, Any]:
    """The create/get/delete answer: both issues and the type, from the source's side."""
    rows = await sim.store.fetchall(
        "SELECT * FROM issues WHERE id IN (?, ?)",
        (link["source_issue_id"], link["target_issue_id"]),
    )
    by_id = {record.id: record for record in await load_records(sim, rows)}
    return {
        "source_issue": await _issue_json_anywhere(sim, by_id[int(link["source_issue_id"])]),
        "target_issue": await _issue_json_anywhere(sim, by_id[int(link["target_issue_id"])]),
        "link_type": link["link_type"],
    }


async def _link_of(sim: Sim, request: web.Request, record: IssueRecord) -> sqlite3.Row:
    link = await sim.store.fetchone(
        "SELECT * FROM issue_links WHERE id = ? AND (source_issue_id = ? OR target_issue_id = ?)",
        (int(request.match_info["link_id"]), record.id, record.id),
    )
    if link is None:
        not_found()
    return link


async def list_links(request: web.Request) -> web.Response:
    sim, record = await _source(request, GUEST)
    user = current_user(request)
    links = await sim.store.fetchall(
        "SELECT * FROM issue_links WHERE source_issue_id = ? OR target_issue_id = ? ORDER BY id",
        (record.id, record.id),
    )
    body = []
    for link in links:
        other_id, link_type = seen_from(link, record.id)
        row = await sim.store.fetchone("SELECT * FROM issues WHERE id = ?", (other_id,))
        if row is None or await access_level(sim, user, int(row["project_id"])) < GUEST:
            continue  # GitLab hides links to issues the user cannot read
        other = (await load_records(sim, [row]))[0]
        body.append(
            {
                **await _issue_json_anywhere(sim, other),
                "issue_link_id": link["id"],
                "link_type": link_type,
                "link_created_at": link["created_at"],
                "link_updated_at": link["updated_at"],
            }
        )
    return paginate(request, body)


async def get_link(request: web.Request) -> web.Response:
    sim, record = await _source(request, GUEST)
    return web.json_response(await _link_body(sim, await _link_of(sim, request, record)))


async def create_link(request: web.Request) -> web.Response:
    sim, source = await _source(request, REPORTER)
    params = await Params.of(request)
    target_ref = params.required("target_project_id")
    target_iid = params.get_int("target_issue_iid")
    if target_iid is None:
        fail(400, "target_issue_iid is missing", key="error")
    link_type = params.get_str("link_type", "relates_to") or "relates_to"
    if link_type not in LINK_TYPES:
        fail(400, "link_type does not have a valid value", key="error")
    target_project = await project_by_ref(sim, target_ref)
    user = current_user(request)
    if target_project is None or await access_level(sim, user, int(target_project["id"])) < GUEST:
        not_found("Project Not Found")
    target = await load_issue(sim, int(target_project["id"]), target_iid)
    if target is None:
        not_found()
    if target.id == source.id:
        fail(400, "Cannot link an issue to itself")
    first, second = (target, source) if link_type == "is_blocked_by" else (source, target)
    stored_type = "blocks" if link_type == "is_blocked_by" else link_type
    stamp = now_iso()
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM issue_links WHERE (source_issue_id = ? AND target_issue_id = ?)"
            " OR (source_issue_id = ? AND target_issue_id = ?)",
            (first.id, second.id, second.id, first.id),
        )
        if await cur.fetchone() is not None:
            fail(409, "Issue(s) already assigned")
        cur = await conn.execute(
            "INSERT INTO issue_links (source_issue_id, target_issue_id, link_type, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
            (first.id, second.id, stored_type, stamp, stamp),
        )
        link = await cur.fetchone()
    assert link is not None
    await _tell_both(sim, user, link, removed=False)
    body = await _link_body(sim, link)
    if link_type == "is_blocked_by":  # answer from the requesting issue's side
        body = {
            "source_issue": body["target_issue"],
            "target_issue": body["source_issue"],
            "link_type": "is_blocked_by",
        }
    return created(body)


async def delete_link(request: web.Request) -> web.Response:
    sim, record = await _source(request, REPORTER)
    link = await _link_of(sim, request, record)
    body = await _link_body(sim, link)
    async with sim.store.write() as conn:
        await conn.execute("DELETE FROM issue_links WHERE id = ?", (link["id"],))
    await _tell_both(sim, current_user(request), link, removed=True)
    return web.json_response(body)


_SAYS = {"relates_to": "related to", "blocks": "blocking", "is_blocked_by": "blocked by"}


async def _tell_both(sim: Sim, user: sqlite3.Row, link: sqlite3.Row, *, removed: bool) -> None:
    """GitLab's system notes on both issues ("marked this issue as related to #2", "removed
    the relation with #2"); as every note does, they touch each issue's ``updated_at``."""
    ends = [int(link["source_issue_id"]), int(link["target_issue_id"])]
    rows = {
        int(row["id"]): row
        for row in await sim.store.fetchall(
            "SELECT id, iid, project_id FROM issues WHERE id IN (?, ?)", tuple(ends)
        )
    }
    for here, there in (ends, ends[::-1]):
        issue, other = rows[here], rows[there]
        project = await project_by_ref(sim, str(issue["project_id"]))
        assert project is not None
        ref = f"#{other['iid']}"
        if other["project_id"] != issue["project_id"]:
            other_project = await project_by_ref(sim, str(other["project_id"]))
            assert other_project is not None
            ref = f"{other_project['namespace']}/{other_project['path']}{ref}"
        _, seen = seen_from(link, here)
        body = (
            f"removed the relation with {ref}"
            if removed
            else f"marked this issue as {_SAYS[seen]} {ref}"
        )
        await create_note(sim, project, "Issue", int(issue["iid"]), user, body, system=True)


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/issues/{{iid:\\d+}}/links"
    app.router.add_get(base, list_links)
    app.router.add_post(base, create_link)
    app.router.add_get(f"{base}/{{link_id:\\d+}}", get_link)
    app.router.add_delete(f"{base}/{{link_id:\\d+}}", delete_link)
