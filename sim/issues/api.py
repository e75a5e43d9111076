"""Project issues: ``/projects/:id/issues`` create, list, get, update, delete, plus the
issue notes and resource label events routes (served by :mod:`sim.issues.note_routes` and
:mod:`sim.issues.label_events`). What a request asks for is read in
:mod:`sim.issues.issue_input`; the Issue Hook is built in :mod:`sim.issues.issue_hooks`.

Access (simplified from GitLab's permission table):
- any member (Guest+) reads, creates and comments on issues;
- the author or a Reporter+ edits title, description, state and confidentiality;
- only Reporter+ set labels and assignees: a Guest's ``labels``/``assignee_ids`` are
  silently ignored, as GitLab ignores them;
- only the Owner (or an administrator) deletes an issue;
- ``created_at``/``updated_at`` overrides are honoured for Owners and administrators only.

Labels given by name that do not exist are created with the default colour. With
``sim.premium``, adding a scoped label drops the issue's other labels of the same scope.
Only Premium allows several assignees; on Free the first one is kept.
Every effective change strictly advances ``updated_at`` and emits an ``issue`` event
(``action`` open/update/close/reopen) with GitLab's ``changes``; a no-op update changes
nothing and emits nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import (
    API,
    GUEST,
    OWNER,
    SIM_KEY,
    Sim,
    access_level,
    current_user,
    load_project,
)
from sim.core.http import Params, created, no_content, not_found, paginate
from sim.core.store import Connection
from sim.issues import label_events, notes
from sim.issues import records as issue_records
from sim.issues.filters import filter_and_sort, sql_narrowing
from sim.issues.issue_hooks import emit_issue_event
from sim.issues.issue_input import IssueInput
from sim.issues.labels import ensure_labels, next_label_names
from sim.issues.note_routes import register_noteable_routes
from sim.issues.noteables import later_than
from sim.issues.records import (
    IssueRecord,
    issue_json,
    load_issue,
    load_records,
)

SCHEMA = issue_records.SCHEMA


# ---------------------------------------------------------------- writing


async def _assignable(sim: Sim, conn: Connection, project_id: int, ids: list[int]) -> list[int]:
    """Members (and administrators) among ``ids``; others are ignored as GitLab does."""
    kept: list[int] = []
    for user_id in dict.fromkeys(ids):
        cur = await conn.execute("SELECT * FROM users WHERE id = ?", (user_id,))
        user = await cur.fetchone()
        if user is not None and await access_level(sim, user, project_id) >= GUEST:
            kept.append(user_id)
    return kept if sim.premium else kept[:1]


async def _write_labels(
    conn: Connection,
    sim: Sim,
    issue_id: int,
    project_id: int,
    user_id: int,
    current: list[sqlite3.Row],
    fields: IssueInput,
    stamp: str,
) -> bool:
    """Apply the label parameters; True if the set changed."""
    names = next_label_names(
        [label["name"] for label in current],
        replace=fields.labels,
        add=fields.add_labels,
        remove=fields.remove_labels,
        exclusive_scopes=sim.premium,
    )
    wanted = await ensure_labels(conn, project_id, names)
    current_ids = {int(label["id"]) for label in current}
    wanted_ids = {int(label["id"]) for label in wanted}
    added = [label for label in wanted if int(label["id"]) not in current_ids]
    removed = [label for label in current if int(label["id"]) not in wanted_ids]
    for label in removed:
        await conn.execute(
            "DELETE FROM issue_labels WHERE issue_id = ? AND label_id = ?", (issue_id, label["id"])
        )
    for label in added:
        await conn.execute(
            "INSERT INTO issue_labels (issue_id, label_id) VALUES (?, ?)", (issue_id, label["id"])
        )
    await label_events.record_label_events(
        conn,
        project_id=project_id,
        resource_type="Issue",
        resource_id=issue_id,
        user_id=user_id,
        added=added,
        removed=removed,
        stamp=stamp,
    )
    return bool(added or removed)


async def _current(conn: Connection, issue_id: int) -> tuple[sqlite3.Row, list[sqlite3.Row]]:
    cur = await conn.execute("SELECT * FROM issues WHERE id = ?", (issue_id,))
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "SELECT labels.* FROM issue_labels JOIN labels ON labels.id = issue_labels.label_id"
        " WHERE issue_labels.issue_id = ? ORDER BY labels.name",
        (issue_id,),
    )
    return row, list(await cur.fetchall())


async def _write_assignees(
    conn: Connection, sim: Sim, issue_id: int, project_id: int, ids: list[int]
) -> None:
    await conn.execute("DELETE FROM issue_assignees WHERE issue_id = ?", (issue_id,))
    for position, user_id in enumerate(await _assignable(sim, conn, project_id, ids)):
        await conn.execute(
            "INSERT INTO issue_assignees (issue_id, user_id, position) VALUES (?, ?, ?)",
            (issue_id, user_id, position),
        )


async def create_issue(
    sim: Sim, project: sqlite3.Row, author: sqlite3.Row, fields: IssueInput
) -> IssueRecord:
    project_id = int(project["id"])
    async with sim.store.write() as conn:
        stamp = fields.stamp_override or later_than(None)
        cur = await conn.execute(
            "SELECT COALESCE(MAX(iid), 0) + 1 FROM issues WHERE project_id = ?", (project_id,)
        )
        next_iid = await cur.fetchone()
        assert next_iid is not None
        cur = await conn.execute(
            "INSERT INTO issues (project_id, iid, title, description, author_id, confidential,"
            " discussion_locked, due_date, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                project_id,
                next_iid[0],
                fields.title,
                fields.description,
                author["id"],
                int(bool(fields.confidential)),
                fields.discussion_locked,
                fields.due_date,
                stamp,
                stamp,
            ),
        )
        issue_id = int((await cur.fetchone() or [0])[0])
        await _write_labels(conn, sim, issue_id, project_id, int(author["id"]), [], fields, stamp)
        await _write_assignees(conn, sim, issue_id, project_id, fields.assignee_ids or [])
    record = await load_issue(sim, project_id, int(next_iid[0]))
    assert record is not None
    emit_issue_event(sim, project, author, None, record, "open")
    return record


async def update_issue(
    sim: Sim, project: sqlite3.Row, before: IssueRecord, editor: sqlite3.Row, fields: IssueInput
) -> IssueRecord:
    project_id = int(project["id"])
    async with sim.store.write() as conn:
        # What the issue is now, read under the write lock: ``before`` was read outside it,
        # and a concurrent update may have changed the labels since (GitLab serialises too).
        row, current_labels = await _current(conn, before.id)
        columns: dict[str, Any] = {}
        for name in ("title", "description", "due_date"):
            value = getattr(fields, name)
            if value is not None and value != row[name]:
                columns[name] = value
        for name in ("confidential", "discussion_locked"):
            value = getattr(fields, name)
            if value is not None and value != (None if row[name] is None else bool(row[name])):
                columns[name] = int(value)
        stamp = fields.stamp_override or later_than(row["updated_at"])
        if fields.state_event == "close" and row["state"] == "opened":
            columns.update(state="closed", closed_at=stamp, closed_by_id=editor["id"])
        elif fields.state_event == "reopen" and row["state"] == "closed":
            columns.update(state="opened", closed_at=None, closed_by_id=None)
        changed = bool(columns)
        labels_changed = await _write_labels(
            conn, sim, before.id, project_id, int(editor["id"]), current_labels, fields, stamp
        )
        if fields.assignee_ids is not None:
            await _write_assignees(conn, sim, before.id, project_id, fields.assignee_ids)
            cur = await conn.execute(
                "SELECT user_id FROM issue_assignees WHERE issue_id = ? ORDER BY position",
                (before.id,),
            )
            now_assigned = [int(r[0]) for r in await cur.fetchall()]
            changed = changed or now_assigned != [int(u["id"]) for u in before.assignees]
        # GitLab leaves a no-op update untouched: same updated_at, no hook.
        if changed or labels_changed:
            if "title" in columns or "description" in columns:
                columns.update(last_edited_at=stamp, last_edited_by_id=editor["id"])
                await _edit_notes(conn, project_id, before, row, columns, editor, stamp)
            columns.update(updated_at=stamp, updated_by_id=editor["id"])
            assignments = ", ".join(f"{name} = ?" for name in columns)
            await conn.execute(
                f"UPDATE issues SET {assignments} WHERE id = ?", (*columns.values(), before.id)
            )
    after = await load_issue(sim, project_id, before.iid)
    assert after is not None
    if not (changed or labels_changed):
        return after
    action = {"closed": "close", "opened": "reopen"}.get(columns.get("state", ""), "update")
    emit_issue_event(sim, project, editor, before, after, action)
    return after


async def _edit_notes(
    conn: Any,
    project_id: int,
    before: IssueRecord,
    row: Any,
    columns: dict[str, Any],
    editor: sqlite3.Row,
    stamp: str,
) -> None:
    """GitLab's system notes for a title or description edit, authored by whoever edited:
    "changed title from **old** to **new**" and "changed the description". The REST issue
    has no field naming the last editor; these notes are how an API client learns it."""
    said = []
    if "title" in columns:
        said.append(f"changed title from **{row['title']}** to **{columns['title']}**")
    if "description" in columns:
        said.append("changed the description")
    for body in said:
        await notes.insert_system_note(
            conn, project_id, "Issue", before.id, before.iid, int(editor["id"]), body, stamp
        )


# ---------------------------------------------------------------- routes


async def _issue_or_404(sim: Sim, project: sqlite3.Row, request: web.Request) -> IssueRecord:
    record = await load_issue(sim, int(project["id"]), int(request.match_info["iid"]))
    if record is None:
        not_found()
    return record


async def list_issues(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    params = await Params.of(request)
    narrowing, args = sql_narrowing(params)
    rows = await sim.store.fetchall(
        f"SELECT * FROM issues WHERE project_id = ?{narrowing}", (project["id"], *args)
    )
    records = filter_and_sort(await load_records(sim, rows), params)
    return paginate(request, [issue_json(sim, project, record) for record in records])


async def get_issue(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    return web.json_response(issue_json(sim, project, await _issue_or_404(sim, project, request)))


async def create_issue_route(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, GUEST)
    user = current_user(request)
    level = await access_level(sim, user, int(project["id"]))
    fields = IssueInput.parse(await Params.of(request), creating=True, level=level, is_author=True)
    record = await create_issue(sim, project, user, fields)
    return created(issue_json(sim, project, record))


async def update_issue_route(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    before = await _issue_or_404(sim, project, request)
    user = current_user(request)
    level = await access_level(sim, user, int(project["id"]))
    is_author = int(before.row["author_id"]) == int(user["id"])
    fields = IssueInput.parse(
        await Params.of(request), creating=False, level=level, is_author=is_author
    )
    record = await update_issue(sim, project, before, user, fields)
    return web.json_response(issue_json(sim, project, record))


async def delete_issue(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, OWNER)
    record = await _issue_or_404(sim, project, request)
    async with sim.store.write() as conn:
        await conn.execute(
            "DELETE FROM notes WHERE noteable_type = 'Issue' AND noteable_id = ?", (record.id,)
        )
        await conn.execute(
            "DELETE FROM resource_label_events WHERE resource_type = 'Issue' AND resource_id = ?",
            (record.id,),
        )
        await conn.execute(
            "DELETE FROM issue_links WHERE source_issue_id = ? OR target_issue_id = ?",
            (record.id, record.id),
        )
        await conn.execute("DELETE FROM issues WHERE id = ?", (record.id,))
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/issues"
    r = app.router
    r.add_get(base, list_issues)
    r.add_post(base, create_issue_route)
    r.add_get(f"{base}/{{iid:\\d+}}", get_issue)
    r.add_put(f"{base}/{{iid:\\d+}}", update_issue_route)
    r.add_delete(f"{base}/{{iid:\\d+}}", delete_issue)
    register_noteable_routes(app, "issues", "Issue", issue_records.issue_noteable)
    label_events.register_label_event_routes(app, "issues", "Issue", issue_records.issue_id_of)
