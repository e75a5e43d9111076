"""What a create or update of an issue asks for, read from its parameters with the rights of who
asks (see :mod:`sim.issues.api` for the access rules)."""

from __future__ import annotations

from dataclasses import dataclass

from sim.core.base import (
    OWNER,
    REPORTER,
)
from sim.core.http import Params, fail
from sim.issues.filters import timestamp_param

_UPDATE_KEYS = (
    "title",
    "description",
    "labels",
    "add_labels",
    "remove_labels",
    "state_event",
    "assignee_ids",
    "assignee_id",
    "confidential",
    "due_date",
    "discussion_locked",
    "updated_at",
)


@dataclass(frozen=True)
class IssueInput:
    """The writable fields a request carries; None means "not given"."""

    title: str | None
    description: str | None
    labels: list[str] | None
    add_labels: list[str]
    remove_labels: list[str]
    assignee_ids: list[int] | None
    state_event: str | None
    confidential: bool | None
    due_date: str | None
    discussion_locked: bool | None
    stamp_override: str | None  # created_at on create, updated_at on update (Owners only)

    @classmethod
    def parse(cls, params: Params, *, creating: bool, level: int, is_author: bool) -> IssueInput:
        if not creating and not any(params.has(key) for key in _UPDATE_KEYS):
            fail(
                400,
                ", ".join(_UPDATE_KEYS) + " are missing, at least one parameter must be provided",
                key="error",
            )
        title = params.required("title") if creating or params.has("title") else None
        state_event = params.get_str("state_event")
        if state_event is not None and state_event not in ("close", "reopen"):
            fail(400, "state_event does not have a valid value", key="error")
        if not creating and level < REPORTER and not is_author:
            fail(403, "403 Forbidden")
        manages = level >= REPORTER  # labels and assignees need Reporter+
        return cls(
            title=title,
            description=params.get_str("description"),
            labels=params.get_list("labels") if manages else None,
            add_labels=(params.get_list("add_labels") or []) if manages else [],
            remove_labels=(params.get_list("remove_labels") or []) if manages else [],
            assignee_ids=_assignee_ids(params) if manages else None,
            state_event=None if creating else state_event,
            confidential=params.get_bool("confidential") if params.has("confidential") else None,
            due_date=params.get_str("due_date"),
            discussion_locked=params.get_bool("discussion_locked")
            if params.has("discussion_locked")
            else None,
            stamp_override=timestamp_param(params, "created_at" if creating else "updated_at")
            if level >= OWNER
            else None,
        )


def _assignee_ids(params: Params) -> list[int] | None:
    if params.has("assignee_ids"):
        ids = params.get_int_list("assignee_ids") or []
    elif params.has("assignee_id"):
        single = params.get_int("assignee_id")
        ids = [single] if single else []
    else:
        return None
    return [user_id for user_id in ids if user_id]  # 0 means "unassign"
