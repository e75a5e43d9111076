"""GitLab commit actions (create, update, delete, move, chmod) turned into index edits.

Pure: works on a snapshot ``path -> (mode, blob id)`` of the parent tree and returns the
edits to feed ``git update-index --index-info``; every GitLab validation happens here, so
an invalid action fails before anything is written.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sim.git.errors import GitActionError

REGULAR, EXECUTABLE = "100644", "100755"
ACTIONS = ("create", "update", "delete", "move", "chmod")


@dataclass(frozen=True)
class TreeEdit:
    """Set ``path`` to ``mode`` with ``content`` (new blob) or an existing ``blob``;
    ``mode`` None removes the path."""

    path: str
    mode: str | None
    blob: str = ""
    content: bytes | None = None


def decode_content(content: Any, encoding: Any) -> bytes:
    """Action content as bytes: ``text`` (the default) or ``base64``."""
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise GitActionError("content must be a string")
    if encoding in (None, "", "text"):
        return content.encode()
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as error:
            raise GitActionError(f"content is not valid base64: {error}") from error
    raise GitActionError(f"encoding must be 'text' or 'base64', not {encoding!r}")


def check_path(path: Any, field: str = "file_path") -> str:
    """A repository-relative file path, or :class:`GitActionError` saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise GitActionError(f"{field} is missing")
    parts = path.split("/")
    bad = (
        path.startswith("/")
        or any(part in ("", ".", "..", ".git") for part in parts)
        or any(ch in path for ch in "\0\n\r")
    )
    if bad:
        raise GitActionError(f"{field} {path!r} is not a valid repository path")
    return path


def apply_actions(
    entries: dict[str, tuple[str, str]], actions: list[dict[str, Any]]
) -> list[TreeEdit]:
    """Validate ``actions`` against the parent tree ``entries`` and return the edits."""
    files = dict(entries)  # path -> (mode, blob); edited as the actions apply in order
    edits: dict[str, TreeEdit] = {}

    def put(path: str, mode: str, blob: str = "", content: bytes | None = None) -> None:
        files[path] = (mode, blob)
        edits[path] = TreeEdit(path, mode, blob, content)

    def remove(path: str) -> None:
        del files[path]
        edits[path] = TreeEdit(path, None)

    for number, action in enumerate(actions, start=1):
        if not isinstance(action, dict):
            raise GitActionError(f"action {number} must be an object")
        kind = action.get("action")
        if kind not in ACTIONS:
            raise GitActionError(
                f"action {number}: action must be one of {', '.join(ACTIONS)}, not {kind!r}"
            )
        path = check_path(action.get("file_path"))
        exists = path in files
        if kind == "create":
            if exists:
                raise GitActionError(f"A file with this name already exists: {path}")
            mode = EXECUTABLE if action.get("execute_filemode") else REGULAR
            put(path, mode, content=decode_content(action.get("content"), action.get("encoding")))
            continue
        if kind == "move":
            previous = check_path(action.get("previous_path"), "previous_path")
            if previous not in files:
                raise GitActionError(f"A file with this name doesn't exist: {previous}")
            if exists and previous != path:
                raise GitActionError(f"A file with this name already exists: {path}")
            mode, blob = files[previous]
            remove(previous)
            if action.get("content") is None:
                put(path, mode, blob)
            else:
                content = decode_content(action["content"], action.get("encoding"))
                put(path, mode, content=content)
            continue
        if not exists:
            raise GitActionError(f"A file with this name doesn't exist: {path}")
        mode, blob = files[path]
        if kind == "delete":
            remove(path)
        elif kind == "update":
            put(path, mode, content=decode_content(action.get("content"), action.get("encoding")))
        else:  # chmod
            new_mode = EXECUTABLE if action.get("execute_filemode") else REGULAR
            previous_edit = edits.get(path)
            pending = previous_edit.content if previous_edit else None
            put(path, new_mode, blob, pending)
    _check_file_directory_clashes(files)
    return list(edits.values())


def _check_file_directory_clashes(files: dict[str, Any]) -> None:
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in files:
                raise GitActionError(
                    f"{path} cannot be created: {prefix} is a file, not a directory"
                )
