"""Notes as GitLab's API shows them and as its Note Hook's ``object_attributes`` carry them."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sim.core.base import (
    Sim,
    user_json,
)
from sim.issues.noteables import (
    Noteable,
    users_by_ids,
)


def _note_body(sim: Sim, row: sqlite3.Row, users: dict[int, sqlite3.Row]) -> dict[str, Any]:
    resolver = users.get(int(row["resolved_by_id"])) if row["resolved_by_id"] else None
    body: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "body": row["body"],
        "attachment": None,
        "author": user_json(sim, users[int(row["author_id"])]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "system": bool(row["system"]),
        "noteable_id": row["noteable_id"],
        "noteable_type": row["noteable_type"],
        "project_id": row["project_id"],
        "commit_id": None,
        "resolvable": bool(row["resolvable"]),
        "confidential": bool(row["internal"]),
        "internal": bool(row["internal"]),
        "imported": False,
        "imported_from": "none",
        "noteable_iid": row["noteable_iid"],
        "commands_changes": {},
    }
    if row["resolvable"]:
        body["resolved"] = bool(row["resolved"])
        body["resolved_by"] = user_json(sim, resolver) if resolver is not None else None
        body["resolved_at"] = row["resolved_at"]
    if row["position"] is not None:
        body["position"] = json.loads(row["position"])
    return body


async def notes_json(sim: Sim, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    ids = [int(r["author_id"]) for r in rows] + [
        int(r["resolved_by_id"]) for r in rows if r["resolved_by_id"]
    ]
    users = await users_by_ids(sim, ids)
    return [_note_body(sim, row, users) for row in rows]


async def note_json(sim: Sim, row: sqlite3.Row) -> dict[str, Any]:
    return (await notes_json(sim, [row]))[0]


def note_hook_attributes(
    sim: Sim, row: sqlite3.Row, noteable: Noteable, action: str
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "note": row["body"],
        "noteable_type": row["noteable_type"],
        "author_id": row["author_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "project_id": row["project_id"],
        "attachment": None,
        "line_code": None,
        "commit_id": "",
        "noteable_id": row["noteable_id"],
        "system": bool(row["system"]),
        "st_diff": None,
        "updated_by_id": None,
        "type": row["type"],
        "position": json.loads(row["position"]) if row["position"] else None,
        "original_position": json.loads(row["position"]) if row["position"] else None,
        "resolved_at": row["resolved_at"],
        "resolved_by_id": row["resolved_by_id"],
        "resolved_by_push": None,
        "discussion_id": row["discussion_id"],
        "internal": bool(row["internal"]),
        "confidential": bool(row["internal"]),
        "url": f"{noteable.web_url}#note_{row['id']}",
        "action": action,
        "description": row["body"],
    }
