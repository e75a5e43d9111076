"""Webhook payload builders, shaped like GitLab's documented examples.

Route modules build a payload and emit it on the event bus; :mod:`sim.core.webhooks`
delivers it. Builders for the shared parts (``user``, ``project``, ``repository``,
labels, ``changes``) plus the envelopes of issue and note events live here so the
merge-request module can emit note events for MR comments the same way:

    note_payload(sim, project, user, note_attributes, noteable_key="merge_request",
                 noteable_attributes=mr_hook_attributes)

Issue-specific ``object_attributes`` come from :func:`sim.issues.api.issue_hook_attributes`
and note ``object_attributes`` from :func:`sim.issues.note_json.note_hook_attributes`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sim.core.base import Sim

VISIBILITY_LEVELS = {"private": 0, "internal": 10, "public": 20}


def user_hook_json(sim: Sim, user: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": user["id"],
        "name": user["name"],
        "username": user["username"],
        "avatar_url": None,
        "email": "[REDACTED]",  # GitLab redacts the email in webhook payloads
    }


def project_hook_json(sim: Sim, project: sqlite3.Row) -> dict[str, Any]:
    full_path = f"{project['namespace']}/{project['path']}"
    web_url = f"{sim.base_url}/{full_path}"
    return {
        "id": project["id"],
        "name": project["name"],
        "description": project["description"],
        "web_url": web_url,
        "avatar_url": None,
        "git_ssh_url": f"git@sim.invalid:{full_path}.git",
        "git_http_url": f"{web_url}.git",
        "namespace": project["namespace"],
        "visibility_level": VISIBILITY_LEVELS.get(project["visibility"], 0),
        "path_with_namespace": full_path,
        "default_branch": project["default_branch"],
        "ci_config_path": None,
        "homepage": web_url,
        "url": f"git@sim.invalid:{full_path}.git",
        "ssh_url": f"git@sim.invalid:{full_path}.git",
        "http_url": f"{web_url}.git",
    }


def repository_hook_json(sim: Sim, project: sqlite3.Row) -> dict[str, Any]:
    full_path = f"{project['namespace']}/{project['path']}"
    return {
        "name": project["name"],
        "url": f"git@sim.invalid:{full_path}.git",
        "description": project["description"],
        "homepage": f"{sim.base_url}/{full_path}",
    }


def label_hook_json(label: sqlite3.Row) -> dict[str, Any]:
    """Labels in webhooks use ``title`` (not ``name``) and carry their type."""
    return {
        "id": label["id"],
        "title": label["name"],
        "color": label["color"],
        "project_id": label["project_id"],
        "created_at": label["created_at"],
        "updated_at": label["updated_at"],
        "template": False,
        "description": label["description"],
        "type": "ProjectLabel",
        "group_id": None,
    }


def change(previous: Any, current: Any) -> dict[str, Any]:
    return {"previous": previous, "current": current}


def envelope(
    sim: Sim,
    kind: str,
    project: sqlite3.Row,
    user: sqlite3.Row,
    object_attributes: dict[str, Any],
) -> dict[str, Any]:
    """The fields every issue/note/merge-request payload starts with."""
    return {
        "object_kind": kind,
        "event_type": kind,
        "user": user_hook_json(sim, user),
        "project": project_hook_json(sim, project),
        "object_attributes": object_attributes,
        "repository": repository_hook_json(sim, project),
    }


def issue_payload(
    sim: Sim,
    project: sqlite3.Row,
    user: sqlite3.Row,
    object_attributes: dict[str, Any],
    *,
    labels: list[dict[str, Any]],
    assignees: list[dict[str, Any]],
    changes: dict[str, Any],
) -> dict[str, Any]:
    """An Issue Hook body; ``object_attributes`` must already include ``action``."""
    body = envelope(sim, "issue", project, user, object_attributes)
    body["assignees"] = assignees
    if assignees:
        body["assignee"] = assignees[0]
    body["labels"] = labels
    body["changes"] = changes
    return body


def note_payload(
    sim: Sim,
    project: sqlite3.Row,
    user: sqlite3.Row,
    note_attributes: dict[str, Any],
    *,
    noteable_key: str,
    noteable_attributes: dict[str, Any],
) -> dict[str, Any]:
    """A Note Hook body. ``noteable_key`` is ``issue`` or ``merge_request`` and
    ``noteable_attributes`` the object GitLab puts under it."""
    return note_event(
        sim, "note", project, user, note_attributes, {noteable_key: noteable_attributes}
    )


def note_event(
    sim: Sim,
    kind: str,
    project: sqlite3.Row,
    user: sqlite3.Row,
    object_attributes: dict[str, Any],
    attached: dict[str, Any],
) -> dict[str, Any]:
    """The body of an event about a note (``note``) or an award on one (``emoji``): the
    envelope, the project's id and what it hangs on (``attached``: the noteable under its
    key, and for an award the note too)."""
    body = envelope(sim, kind, project, user, object_attributes)
    body["project_id"] = project["id"]
    body.update(attached)
    return body
