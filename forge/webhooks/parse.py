"""Turn a decoded GitLab webhook payload into a typed event.

A payload of a kind crewline does not handle (push, tag_push, wiki_page, a comment on a
commit...) is :class:`Ignored`, not an error. A handled kind that lacks a field crewline
needs raises :class:`PayloadError` naming the field, e.g. ``object_attributes.iid is
missing``; error messages never quote payload values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from forge.webhooks.events import (
    BuildSummary,
    EmojiEvent,
    IssueEvent,
    MergeRequestEvent,
    NoteEvent,
    PipelineEvent,
    WebhookEvent,
)

T = TypeVar("T")

_TYPE_NAMES: dict[type, str] = {
    int: "an integer",
    str: "a string",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}


class PayloadError(ValueError):
    """A handled event kind whose payload lacks a field or has one of the wrong type."""


@dataclass(frozen=True)
class Ignored:
    """A payload crewline accepts but does not act on, and why."""

    reason: str


class _Fields:
    """Typed access to a payload by dotted path (``object_attributes.iid``)."""

    def __init__(self, payload: Mapping[str, Any], prefix: str = "") -> None:
        self._payload = payload
        self._prefix = prefix

    def _lookup(self, path: str) -> Any:
        node: Any = self._payload
        for part in path.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node

    def _typed(self, path: str, expected: type[T], *, required: bool) -> T | None:
        value = self._lookup(path)
        name = self._prefix + path
        if value is None:
            if required:
                raise PayloadError(f"{name} is missing")
            return None
        # bool is an int in Python; a JSON true is never an id.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise PayloadError(
                f"{name} is invalid: expected {_TYPE_NAMES[expected]}, got {type(value).__name__}"
            )
        return value

    def required_int(self, path: str) -> int:
        return _present(self._typed(path, int, required=True))

    def required_str(self, path: str) -> str:
        return _present(self._typed(path, str, required=True))

    def optional_int(self, path: str) -> int | None:
        return self._typed(path, int, required=False)

    def optional_str(self, path: str) -> str | None:
        return self._typed(path, str, required=False)

    def optional_bool(self, path: str) -> bool | None:
        return self._typed(path, bool, required=False)

    def optional_time(self, path: str) -> datetime | None:
        text = self.optional_str(path)
        if text is None:
            return None
        try:
            return parse_gitlab_time(text)
        except ValueError:
            raise PayloadError(f"{self._prefix}{path} is invalid: expected a timestamp") from None

    def items(self, path: str) -> list[_Fields]:
        """The objects of a list field (absent means empty)."""
        values = self._typed(path, list, required=False) or []
        items = []
        for index, value in enumerate(values):
            item_name = f"{self._prefix}{path}[{index}]"
            if not isinstance(value, Mapping):
                raise PayloadError(f"{item_name} is invalid: expected an object")
            items.append(_Fields(value, prefix=item_name + "."))
        return items

    def label_titles(self, path: str) -> list[str] | None:
        """Titles of a list of label objects; ``None`` when the field is absent."""
        if self._lookup(path) is None:
            return None
        return [label.required_str("title") for label in self.items(path)]


def _present(value: T | None) -> T:
    # _typed(required=True) never returns None; this narrows the type for mypy.
    assert value is not None
    return value


def parse_gitlab_time(text: str) -> datetime:
    """GitLab writes both ``2013-12-03T17:15:43Z`` and ``2015-05-17 18:08:09 UTC``."""
    if text.endswith(" UTC"):
        text = text.removesuffix(" UTC") + "+00:00"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _common(fields: _Fields, uuid: str | None, received_at: datetime) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "received_at": received_at,
        "project_id": fields.required_int("project.id"),
        "project_path": fields.required_str("project.path_with_namespace"),
    }


def _current_labels(fields: _Fields) -> list[str]:
    # Issue and MR hooks carry the labels both in object_attributes and at the top level.
    labels = fields.label_titles("object_attributes.labels")
    if labels is None:
        labels = fields.label_titles("labels")
    return labels or []


def _issue(fields: _Fields, common: dict[str, Any]) -> IssueEvent:
    return IssueEvent(
        **common,
        iid=fields.required_int("object_attributes.iid"),
        action=fields.optional_str("object_attributes.action"),
        state=fields.required_str("object_attributes.state"),
        labels=_current_labels(fields),
        previous_labels=fields.label_titles("changes.labels.previous"),
        current_labels=fields.label_titles("changes.labels.current"),
        updated_at=fields.optional_time("object_attributes.updated_at"),
    )


def _note(fields: _Fields, common: dict[str, Any]) -> NoteEvent | Ignored:
    noteable_type = fields.required_str("object_attributes.noteable_type")
    issue_iid = mr_iid = None
    target: Literal["Issue", "MergeRequest"]
    if noteable_type == "Issue":
        target, issue_iid = "Issue", fields.required_int("issue.iid")
    elif noteable_type == "MergeRequest":
        target, mr_iid = "MergeRequest", fields.required_int("merge_request.iid")
    else:
        return Ignored(f"comments on {noteable_type[:40]!r} are not handled")
    return NoteEvent(
        **common,
        noteable_type=target,
        issue_iid=issue_iid,
        mr_iid=mr_iid,
        note_id=fields.required_int("object_attributes.id"),
        body=fields.required_str("object_attributes.note"),
        author_username=fields.required_str("user.username"),
        action=fields.optional_str("object_attributes.action"),
        system=bool(fields.optional_bool("object_attributes.system")),
    )


def _merge_request(fields: _Fields, common: dict[str, Any]) -> MergeRequestEvent:
    return MergeRequestEvent(
        **common,
        iid=fields.required_int("object_attributes.iid"),
        action=fields.optional_str("object_attributes.action"),
        state=fields.required_str("object_attributes.state"),
        source_branch=fields.required_str("object_attributes.source_branch"),
        target_branch=fields.required_str("object_attributes.target_branch"),
        last_commit_sha=fields.optional_str("object_attributes.last_commit.id"),
        detailed_merge_status=fields.optional_str("object_attributes.detailed_merge_status"),
        labels=_current_labels(fields),
    )


def _pipeline(fields: _Fields, common: dict[str, Any]) -> PipelineEvent:
    builds = [
        BuildSummary(
            id=build.required_int("id"),
            name=build.required_str("name"),
            stage=build.required_str("stage"),
            status=build.required_str("status"),
            allow_failure=bool(build.optional_bool("allow_failure")),
            failure_reason=build.optional_str("failure_reason"),
        )
        for build in fields.items("builds")
    ]
    return PipelineEvent(
        **common,
        pipeline_id=fields.required_int("object_attributes.id"),
        ref=fields.required_str("object_attributes.ref"),
        sha=fields.required_str("object_attributes.sha"),
        status=fields.required_str("object_attributes.status"),
        source=fields.optional_str("object_attributes.source"),
        merge_request_iid=fields.optional_int("merge_request.iid"),
        builds=builds,
    )


def _emoji(fields: _Fields, common: dict[str, Any]) -> EmojiEvent:
    return EmojiEvent(
        **common,
        event_type=fields.required_str("event_type"),
        name=fields.required_str("object_attributes.name"),
        awardable_type=fields.required_str("object_attributes.awardable_type"),
        awardable_id=fields.required_int("object_attributes.awardable_id"),
        issue_iid=fields.optional_int("issue.iid"),
    )


_Parser = Callable[[_Fields, dict[str, Any]], WebhookEvent | Ignored]

_PARSERS: dict[str, _Parser] = {
    "issue": _issue,
    "note": _note,
    "merge_request": _merge_request,
    "pipeline": _pipeline,
    "emoji": _emoji,
}

HANDLED_KINDS = frozenset(_PARSERS)


def parse_event(
    payload: Mapping[str, Any], *, uuid: str | None, received_at: datetime
) -> WebhookEvent | Ignored:
    """The typed event of a decoded payload, or :class:`Ignored` for kinds crewline
    does not act on. Raises :class:`PayloadError` naming a missing or mistyped field."""
    fields = _Fields(payload)
    kind = fields.required_str("object_kind")
    parser = _PARSERS.get(kind)
    if parser is None:
        return Ignored(f"object_kind {kind[:40]!r} is not handled")
    return parser(fields, _common(fields, uuid, received_at))
