"""Project labels (``/projects/:id/labels``) and the label rules issues and merge requests share.

Public helpers for other route modules:

- :func:`ensure_labels` finds labels by name inside a write transaction, creating missing
  ones with :data:`DEFAULT_COLOR` (GitLab does the same for ``labels``/``add_labels``).
- :func:`next_label_names` computes an issuable's new label set from ``labels``,
  ``add_labels`` and ``remove_labels``, applying scoped-label exclusivity when asked.
- :func:`label_json` / :func:`label_brief_json` are GitLab's label shapes.

Access (simplified from GitLab's permission table): any member may list and read labels;
Reporter and above create, edit and delete them.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.base import API, REPORTER, SIM_KEY, Sim, load_project
from sim.core.http import Params, created, fail, missing, no_content, not_found, now_iso, paginate
from sim.core.store import Connection

DEFAULT_COLOR = "#6699cc"  # GitLab's Label::DEFAULT_COLOR, used for labels created on the fly

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    description TEXT,
    priority INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
)
"""

_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


# ---------------------------------------------------------------- pure rules


def scope_of(name: str) -> str | None:
    """The scope key of a scoped label: everything before the LAST ``::`` (so the scope of
    ``a::b::c`` is ``a::b``), or None for an unscoped label."""
    key, separator, value = name.rpartition("::")
    return key if separator and key and value else None


def next_label_names(
    current: list[str],
    *,
    replace: list[str] | None = None,
    add: list[str] | None = None,
    remove: list[str] | None = None,
    exclusive_scopes: bool,
) -> list[str]:
    """The label names an issuable ends up with (as GitLab's issuable update computes them).

    ``replace`` (the ``labels`` parameter) sets the whole list; ``add`` and ``remove`` then
    apply. With ``exclusive_scopes`` (GitLab Premium), every scope that received a new label
    keeps only the last label given for it: older labels of that scope are dropped.
    """
    base = list(replace) if replace is not None else list(current)
    result: list[str] = []
    for name in [*base, *(add or [])]:
        if name in result:
            result.remove(name)  # the later mention decides the order, so "last wins"
        result.append(name)
    removed = set(remove or [])
    result = [name for name in result if name not in removed]
    if not exclusive_scopes:
        return result
    newly_added = [name for name in result if name not in current]
    touched_scopes = {scope for name in newly_added if (scope := scope_of(name))}
    last_of_scope = {scope_of(name): name for name in result if scope_of(name) in touched_scopes}
    return [
        name
        for name in result
        if scope_of(name) not in touched_scopes or last_of_scope[scope_of(name)] == name
    ]


def text_color(color: str) -> str:
    """GitLab picks dark text on light labels and white text on dark ones."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return "#1F1E24" if luminance > 128 else "#FFFFFF"


def _valid_color(color: str) -> str:
    if not _HEX_COLOR.match(color):
        fail(400, {"color": ["must be a valid color code"]})
    return color


def _valid_name(name: str) -> str:
    if not name.strip():
        fail(400, {"title": ["can't be blank"]})
    if "," in name:
        fail(400, {"title": ["is invalid"]})  # commas separate labels in every list parameter
    return name.strip()


# ---------------------------------------------------------------- JSON shapes


def label_brief_json(row: sqlite3.Row) -> dict[str, Any]:
    """The short label shape of resource label events."""
    return {
        "id": row["id"],
        "name": row["name"],
        "color": row["color"],
        "description": row["description"],
    }


def label_json(row: sqlite3.Row, counts: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        **label_brief_json(row),
        "description_html": row["description"] or "",
        "text_color": text_color(row["color"]),
        "subscribed": False,
        "priority": row["priority"],
        "is_project_label": True,
    }
    if counts is not None:
        body.update(counts)
    return body


async def label_counts(sim: Sim, label_id: int) -> dict[str, int]:
    """Issue counts by state. Merge requests are counted by their own module, not here, so
    ``open_merge_requests_count`` is always 0 in the simulator."""
    rows = await sim.store.fetchall(
        "SELECT issues.state, COUNT(*) FROM issue_labels JOIN issues ON issues.id = issue_labels.issue_id"
        " WHERE issue_labels.label_id = ? GROUP BY issues.state",
        (label_id,),
    )
    by_state = {row[0]: int(row[1]) for row in rows}
    return {
        "open_issues_count": by_state.get("opened", 0),
        "closed_issues_count": by_state.get("closed", 0),
        "open_merge_requests_count": 0,
    }


# ---------------------------------------------------------------- storage


async def ensure_labels(conn: Connection, project_id: int, names: list[str]) -> list[sqlite3.Row]:
    """The project's labels called ``names`` (in that order), creating missing ones with the
    default colour. Call inside ``sim.store.write()``."""
    rows = []
    for name in names:
        _valid_name(name)
        cur = await conn.execute(
            "SELECT * FROM labels WHERE project_id = ? AND name = ?", (project_id, name)
        )
        row = await cur.fetchone()
        if row is None:
            stamp = now_iso()
            cur = await conn.execute(
                "INSERT INTO labels (project_id, name, color, description, created_at, updated_at)"
                " VALUES (?, ?, ?, NULL, ?, ?) RETURNING *",
                (project_id, name, DEFAULT_COLOR, stamp, stamp),
            )
            row = await cur.fetchone()
        assert row is not None
        rows.append(row)
    return rows


async def find_label(sim: Sim, project_id: int, ref: str) -> sqlite3.Row | None:
    """A label by id or by (URL-decoded) name, as ``/labels/:label_id`` accepts both."""
    ref = unquote(ref)
    row = await sim.store.fetchone(
        "SELECT * FROM labels WHERE project_id = ? AND name = ?", (project_id, ref)
    )
    if row is None and ref.isdigit():
        row = await sim.store.fetchone(
            "SELECT * FROM labels WHERE project_id = ? AND id = ?", (project_id, int(ref))
        )
    return row


# ---------------------------------------------------------------- routes


async def list_labels(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    params = await Params.of(request)
    search = (params.get_str("search") or "").lower()
    rows = await sim.store.fetchall(
        "SELECT * FROM labels WHERE project_id = ? ORDER BY name", (project["id"],)
    )
    rows = [row for row in rows if search in row["name"].lower()]
    with_counts = params.get_bool("with_counts")
    body = [
        label_json(row, await label_counts(sim, int(row["id"])) if with_counts else None)
        for row in rows
    ]
    return paginate(request, body)


async def get_label(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request)
    row = await _label_or_404(sim, int(project["id"]), request.match_info["label_id"])
    return web.json_response(label_json(row, await label_counts(sim, int(row["id"]))))


async def create_label(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    name = _valid_name(params.required("name"))
    color = _valid_color(params.required("color"))
    stamp = now_iso()
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM labels WHERE project_id = ? AND name = ?", (project["id"], name)
        )
        if await cur.fetchone() is not None:
            fail(409, "Label already exists")
        cur = await conn.execute(
            "INSERT INTO labels (project_id, name, color, description, priority, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                project["id"],
                name,
                color,
                params.get_str("description"),
                params.get_int("priority"),
                stamp,
                stamp,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return created(label_json(row, await label_counts(sim, int(row["id"]))))


async def update_label(request: web.Request) -> web.Response:
    """``PUT /labels/:label_id``, or ``PUT /labels`` with ``name`` (python-gitlab uses this)."""
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = request.match_info.get("label_id") or params.get_str("label_id") or params.get_str("name")
    if ref is None:
        missing("label_id")
    row = await _label_or_404(sim, int(project["id"]), ref)
    new_name = params.get_str("new_name")
    color = params.get_str("color")
    if (
        new_name is None
        and color is None
        and not params.has("description")
        and not params.has("priority")
    ):
        fail(
            400,
            "new_name, color, description, priority are missing, "
            "at least one parameter must be provided",
            key="error",
        )
    name = _valid_name(new_name) if new_name is not None else row["name"]
    async with sim.store.write() as conn:
        if name != row["name"]:
            cur = await conn.execute(
                "SELECT 1 FROM labels WHERE project_id = ? AND name = ?", (project["id"], name)
            )
            if await cur.fetchone() is not None:
                fail(409, "Label already exists")
        cur = await conn.execute(
            "UPDATE labels SET name = ?, color = ?, description = ?, priority = ?, updated_at = ?"
            " WHERE id = ? RETURNING *",
            (
                name,
                _valid_color(color) if color is not None else row["color"],
                params.get_str("description") if params.has("description") else row["description"],
                params.get_int("priority") if params.has("priority") else row["priority"],
                now_iso(),
                row["id"],
            ),
        )
        updated = await cur.fetchone()
    assert updated is not None
    return web.json_response(label_json(updated, await label_counts(sim, int(updated["id"]))))


async def delete_label(request: web.Request) -> web.Response:
    """``DELETE /labels/:label_id`` or ``DELETE /labels?name=...``: 204, the label leaves
    every issue it was on."""
    sim = request.app[SIM_KEY]
    project = await load_project(request, REPORTER)
    params = await Params.of(request)
    ref = request.match_info.get("label_id") or params.get_str("name")
    if ref is None:
        missing("label_id")
    row = await _label_or_404(sim, int(project["id"]), ref)
    async with sim.store.write() as conn:
        await conn.execute("DELETE FROM issue_labels WHERE label_id = ?", (row["id"],))
        await conn.execute("DELETE FROM labels WHERE id = ?", (row["id"],))
    return no_content()


async def _label_or_404(sim: Sim, project_id: int, ref: str) -> sqlite3.Row:
    row = await find_label(sim, project_id, ref)
    if row is None:
        not_found("Label Not Found")
    return row


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/labels"
    r = app.router
    r.add_get(base, list_labels)
    r.add_post(base, create_label)
    r.add_put(base, update_label)
    r.add_delete(base, delete_label)
    r.add_get(f"{base}/{{label_id}}", get_label)
    r.add_put(f"{base}/{{label_id}}", update_label)
    r.add_delete(f"{base}/{{label_id}}", delete_label)
