"""Typed GitLab webhook events: the few fields crewline acts on, taken from GitLab's
documented payloads (issue, note, merge request, pipeline and emoji hooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseWebhookEvent(_Frozen):
    """What every event carries. ``uuid`` is GitLab's ``X-Gitlab-Event-UUID`` header
    (``None`` when the sender did not set one)."""

    uuid: str | None
    received_at: datetime
    project_id: int
    project_path: str

    @property
    def target_iid(self) -> int | None:
        """The issue or merge request this event is about, when there is one."""
        return None

    def log_context(self) -> str:
        """Identifies the event in a log line without any payload text."""
        kind = getattr(self, "kind", "?")
        return f"kind={kind} project={self.project_path} iid={self.target_iid} uuid={self.uuid}"


class IssueEvent(BaseWebhookEvent):
    kind: Literal["issue"] = "issue"
    iid: int
    action: str | None
    state: str
    labels: list[str]
    # Both None unless this event changed the labels (``changes.labels`` in the payload).
    previous_labels: list[str] | None = None
    current_labels: list[str] | None = None
    updated_at: datetime | None = None

    @property
    def target_iid(self) -> int | None:
        return self.iid

    @property
    def labels_changed(self) -> bool:
        return self.current_labels is not None


class NoteEvent(BaseWebhookEvent):
    """A comment on an issue or a merge request (comments on commits and snippets are
    not turned into events)."""

    kind: Literal["note"] = "note"
    noteable_type: Literal["Issue", "MergeRequest"]
    issue_iid: int | None = None
    mr_iid: int | None = None
    note_id: int
    body: str
    author_username: str
    action: str | None = None
    system: bool = False

    @property
    def target_iid(self) -> int | None:
        return self.issue_iid if self.noteable_type == "Issue" else self.mr_iid


class MergeRequestEvent(BaseWebhookEvent):
    kind: Literal["merge_request"] = "merge_request"
    iid: int
    action: str | None
    state: str
    source_branch: str
    target_branch: str
    last_commit_sha: str | None
    detailed_merge_status: str | None = None
    labels: list[str]

    @property
    def target_iid(self) -> int | None:
        return self.iid


class BuildSummary(_Frozen):
    """One job of a pipeline, as the pipeline hook lists it under ``builds``."""

    id: int
    name: str
    stage: str
    status: str
    allow_failure: bool = False
    failure_reason: str | None = None


class PipelineEvent(BaseWebhookEvent):
    kind: Literal["pipeline"] = "pipeline"
    pipeline_id: int
    ref: str
    sha: str
    status: str
    source: str | None
    merge_request_iid: int | None = None
    builds: list[BuildSummary]

    @property
    def target_iid(self) -> int | None:
        return self.merge_request_iid


class EmojiEvent(BaseWebhookEvent):
    """Someone awarded (``event_type`` "award") or removed ("revoke") an emoji; crewline
    cares about those on the notes of issues (a 👍 on a plan note decides the plan gate)."""

    kind: Literal["emoji"] = "emoji"
    event_type: str
    name: str
    awardable_type: str
    awardable_id: int
    issue_iid: int | None = None

    @property
    def target_iid(self) -> int | None:
        return self.issue_iid


WebhookEvent = IssueEvent | NoteEvent | MergeRequestEvent | PipelineEvent | EmojiEvent

# Merge request hook actions that change who approved (GitLab: "approved" once the
# required approvals are there, "approval" for each other one; and their undoing).
APPROVAL_ACTIONS = frozenset({"approved", "approval", "unapproved", "unapproval"})


def wakes_gates(event: WebhookEvent) -> bool:
    """Whether ``event`` may decide a gate in GitLab: an emoji, or an MR (un)approval."""
    if isinstance(event, EmojiEvent):
        return True
    return isinstance(event, MergeRequestEvent) and event.action in APPROVAL_ACTIONS
