"""Reading one field of GitLab's JSON, with an error that names the field when GitLab
answers something crewline cannot read: the one place the typed values of
:mod:`forge.mr_types` and :mod:`forge.ci_types` take their fields from.

Absent and ``null`` optional fields read as empty (GitLab leaves many out depending on its
version and the object's state); a present field of the wrong kind is an error, never a
silent default, so a proxy or another API answering in GitLab's place shows up at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class UnexpectedAnswer(ValueError):
    """GitLab answered a ``kind`` whose ``field`` crewline cannot read."""

    def __init__(self, kind: str, field: str, value: Any, expected: str) -> None:
        self.kind = kind
        self.field = field
        self.value = value
        shown = repr(value)
        shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
        super().__init__(
            f"GitLab answered a {kind} whose {field!r} is {shown}, expected {expected}. "
            "crewline reads GitLab's REST API v4: check that gitlab.url points at GitLab "
            "(not a proxy's error page) and that its version is supported."
        )


def record(data: Any, kind: str, where: str = "the answer") -> Mapping[str, Any]:
    """``data`` as a JSON object, else :class:`UnexpectedAnswer`."""
    if not isinstance(data, Mapping):
        raise UnexpectedAnswer(kind, where, data, "a JSON object")
    return data


def whole(data: Mapping[str, Any], key: str, kind: str) -> int:
    """A required whole number (ids)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnexpectedAnswer(kind, key, value, "a whole number")
    try:
        return int(value)
    except ValueError:
        raise UnexpectedAnswer(kind, key, value, "a whole number") from None


def whole_or_none(data: Mapping[str, Any], key: str, kind: str) -> int | None:
    return None if data.get(key) is None else whole(data, key, kind)


def number_or_none(data: Mapping[str, Any], key: str, kind: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnexpectedAnswer(kind, key, value, "a number or null")
    return float(value)


def text(data: Mapping[str, Any], key: str, kind: str) -> str:
    """A string field; absent or null reads as empty."""
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnexpectedAnswer(kind, key, value, "a string")
    return str(value)


def required_text(data: Mapping[str, Any], key: str, kind: str) -> str:
    found = text(data, key, kind)
    if not found:
        raise UnexpectedAnswer(kind, key, data.get(key), "a non-empty string")
    return found


def flag(data: Mapping[str, Any], key: str, kind: str) -> bool:
    """A boolean field; absent or null reads as false."""
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UnexpectedAnswer(kind, key, value, "true or false")
    return value


def listed(data: Mapping[str, Any], key: str, kind: str) -> list[Any]:
    """A list field; absent or null reads as empty."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UnexpectedAnswer(kind, key, value, "a list")
    return value


def nested(data: Mapping[str, Any], key: str, kind: str) -> Mapping[str, Any] | None:
    """An object field; absent or null reads as None."""
    value = data.get(key)
    if value is None:
        return None
    return record(value, kind, key)


def username(data: Mapping[str, Any], key: str, kind: str) -> tuple[str, int]:
    """The ``username`` and ``id`` of a user object field (``author``, ``user``)."""
    user = nested(data, key, kind)
    if user is None:
        return "", 0
    return text(user, "username", f"{kind}'s {key}"), whole_or_none(
        user, "id", f"{kind}'s {key}"
    ) or 0
