"""Plain, immutable views of GitLab objects: what roles read, free of python-gitlab."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forge.mr_types import DiffRefs


def _user(data: Any) -> str:
    return str(data.get("username", "")) if isinstance(data, dict) else ""


def _user_id(data: Any) -> int:
    return int(data.get("id") or 0) if isinstance(data, dict) else 0


@dataclass(frozen=True)
class Issue:
    project: str
    iid: int
    id: int
    title: str
    description: str
    labels: tuple[str, ...]
    state: str
    author: str
    updated_at: str
    created_at: str
    web_url: str
    author_id: int = 0

    @classmethod
    def of(cls, project: str, data: dict[str, Any]) -> Issue:
        return cls(
            project=project,
            iid=int(data["iid"]),
            id=int(data["id"]),
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            labels=tuple(data.get("labels") or ()),
            state=str(data.get("state") or "opened"),
            author=_user(data.get("author")),
            updated_at=str(data.get("updated_at") or ""),
            created_at=str(data.get("created_at") or ""),
            web_url=str(data.get("web_url") or ""),
            author_id=_user_id(data.get("author")),
        )

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


@dataclass(frozen=True)
class Note:
    id: int
    body: str
    author: str
    created_at: str
    updated_at: str
    system: bool
    author_id: int = 0
    # Set by the gateway (forge/trust.py): written by one of crewline's own users. Only
    # such notes keep their hidden markers.
    by_crewline: bool = False

    @classmethod
    def of(cls, data: dict[str, Any]) -> Note:
        return cls(
            id=int(data["id"]),
            body=str(data.get("body") or ""),
            author=_user(data.get("author")),
            created_at=str(data.get("created_at") or ""),
            updated_at=str(data.get("updated_at") or ""),
            system=bool(data.get("system")),
            author_id=_user_id(data.get("author")),
        )


@dataclass(frozen=True)
class Award:
    """An award emoji on a note: who reacted, with which emoji name, when."""

    name: str
    user: str
    created_at: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Award:
        return cls(
            name=str(data.get("name") or ""),
            user=_user(data.get("user")),
            created_at=str(data.get("created_at") or ""),
        )


@dataclass(frozen=True)
class Approval:
    """A user's Approve on a merge request; ``approved_at`` is empty where GitLab does not
    say (before GitLab 18.4 the approvals API named the approver only)."""

    user: str
    approved_at: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Approval:
        return cls(user=_user(data.get("user")), approved_at=str(data.get("approved_at") or ""))


@dataclass(frozen=True)
class LabelEvent:
    id: int
    action: str  # "add" | "remove"
    label: str
    created_at: str
    user: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> LabelEvent:
        label = data.get("label") or {}
        return cls(
            id=int(data["id"]),
            action=str(data.get("action") or ""),
            label=str(label.get("name") or "") if isinstance(label, dict) else "",
            created_at=str(data.get("created_at") or ""),
            user=_user(data.get("user")),
        )


@dataclass(frozen=True)
class MergeRequest:
    project: str
    iid: int
    id: int
    title: str
    description: str
    state: str
    draft: bool
    source_branch: str
    target_branch: str
    sha: str
    detailed_merge_status: str
    web_url: str
    labels: tuple[str, ...] = ()
    head_pipeline: Pipeline | None = field(default=None, compare=False)
    diff_refs: DiffRefs | None = field(default=None, compare=False)
    author: str = ""

    @classmethod
    def of(cls, project: str, data: dict[str, Any]) -> MergeRequest:
        return cls(
            project=project,
            iid=int(data["iid"]),
            id=int(data["id"]),
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            state=str(data.get("state") or ""),
            draft=bool(data.get("draft") or data.get("work_in_progress")),
            source_branch=str(data.get("source_branch") or ""),
            target_branch=str(data.get("target_branch") or ""),
            sha=str(data.get("sha") or ""),
            detailed_merge_status=str(data.get("detailed_merge_status") or ""),
            web_url=str(data.get("web_url") or ""),
            labels=tuple(data.get("labels") or ()),
            head_pipeline=_head_pipeline(data.get("head_pipeline")),
            diff_refs=DiffRefs.of(data.get("diff_refs")),
            author=_user(data.get("author")),
        )


@dataclass(frozen=True)
class Pipeline:
    id: int
    ref: str
    sha: str
    status: str
    web_url: str
    source: str = ""  # push, merge_request_event, api, schedule, ...
    # Only on a single pipeline's answer (GET .../pipelines/:id): why GitLab could not run it.
    yaml_errors: str = ""

    @classmethod
    def of(cls, data: dict[str, Any]) -> Pipeline:
        return cls(
            id=int(data["id"]),
            ref=str(data.get("ref") or ""),
            sha=str(data.get("sha") or ""),
            status=str(data.get("status") or ""),
            web_url=str(data.get("web_url") or ""),
            source=str(data.get("source") or ""),
            yaml_errors=str(data.get("yaml_errors") or ""),
        )


def _head_pipeline(data: Any) -> Pipeline | None:
    """An MR's ``head_pipeline``: null before its first pipeline, and some GitLab versions
    show an empty object to users who may not read the pipeline."""
    return Pipeline.of(data) if isinstance(data, dict) and data.get("id") else None
