"""Sample GitLab webhook bodies (issue, notes, merge request, pipeline, push), shaped like the
examples in GitLab's webhook events documentation (same keys and nesting, trimmed of fields
crewline never reads), for the receiver's and the parser's tests."""

from __future__ import annotations

from typing import Any

_PROJECT: dict[str, Any] = {
    "id": 42,
    "name": "Widgets",
    "description": "",
    "web_url": "http://gitlab.example.com/acme/widgets",
    "avatar_url": None,
    "git_ssh_url": "git@gitlab.example.com:acme/widgets.git",
    "git_http_url": "http://gitlab.example.com/acme/widgets.git",
    "namespace": "Acme",
    "visibility_level": 0,
    "path_with_namespace": "acme/widgets",
    "default_branch": "main",
    "ci_config_path": None,
    "homepage": "http://gitlab.example.com/acme/widgets",
    "url": "git@gitlab.example.com:acme/widgets.git",
    "ssh_url": "git@gitlab.example.com:acme/widgets.git",
    "http_url": "http://gitlab.example.com/acme/widgets.git",
}


_USER: dict[str, Any] = {
    "id": 7,
    "name": "Ada Lovelace",
    "username": "ada",
    "avatar_url": "http://www.gravatar.com/avatar/0?s=40&d=identicon",
    "email": "[REDACTED]",
}


def _label(label_id: int, title: str) -> dict[str, Any]:
    return {
        "id": label_id,
        "title": title,
        "color": "#428bca",
        "project_id": 42,
        "created_at": "2024-05-01T09:00:00Z",
        "updated_at": "2024-05-01T09:00:00Z",
        "template": False,
        "description": None,
        "type": "ProjectLabel",
        "group_id": None,
    }


def issue_payload(iid: int = 12, *, with_label_change: bool = True) -> dict[str, Any]:
    labels = [_label(301, "workflow::dev-ready"), _label(302, "backend")]
    payload: dict[str, Any] = {
        "object_kind": "issue",
        "event_type": "issue",
        "user": dict(_USER),
        "project": dict(_PROJECT),
        "object_attributes": {
            "id": 9000 + iid,
            "title": "Add CSV export",
            "assignee_ids": [],
            "assignee_id": None,
            "author_id": 7,
            "project_id": 42,
            "created_at": "2024-05-02T10:00:00Z",
            "updated_at": "2024-05-02T11:30:15Z",
            "updated_by_id": 7,
            "description": "Export the widget table as CSV.",
            "milestone_id": None,
            "state_id": 1,
            "type": "Issue",
            "iid": iid,
            "url": f"http://gitlab.example.com/acme/widgets/-/issues/{iid}",
            "state": "opened",
            "action": "update",
            "labels": labels,
        },
        "repository": {
            "name": "Widgets",
            "url": "git@gitlab.example.com:acme/widgets.git",
            "description": "",
            "homepage": "http://gitlab.example.com/acme/widgets",
        },
        "assignees": [],
        "labels": labels,
        "changes": {
            "updated_at": {
                "previous": "2024-05-02 10:00:00 UTC",
                "current": "2024-05-02 11:30:15 UTC",
            },
        },
    }
    if with_label_change:
        payload["changes"]["labels"] = {
            "previous": [_label(300, "workflow::plan-review"), _label(302, "backend")],
            "current": labels,
        }
    return payload


def _note_attributes(note_id: int, body: str, noteable_type: str) -> dict[str, Any]:
    return {
        "id": note_id,
        "note": body,
        "noteable_type": noteable_type,
        "author_id": 7,
        "created_at": "2024-05-02 12:00:00 UTC",
        "updated_at": "2024-05-02 12:00:00 UTC",
        "project_id": 42,
        "attachment": None,
        "line_code": None,
        "commit_id": "",
        "noteable_id": 9012,
        "system": False,
        "st_diff": None,
        "action": "create",
        "url": f"http://gitlab.example.com/acme/widgets/-/issues/12#note_{note_id}",
    }


def issue_note_payload(note_id: int = 501, body: str = "Looks good to me") -> dict[str, Any]:
    return {
        "object_kind": "note",
        "event_type": "note",
        "user": dict(_USER),
        "project_id": 42,
        "project": dict(_PROJECT),
        "repository": {"name": "Widgets", "url": "git@gitlab.example.com:acme/widgets.git"},
        "object_attributes": _note_attributes(note_id, body, "Issue"),
        "issue": {
            "id": 9012,
            "title": "Add CSV export",
            "assignee_ids": [],
            "assignee_id": None,
            "author_id": 7,
            "project_id": 42,
            "created_at": "2024-05-02 10:00:00 UTC",
            "updated_at": "2024-05-02 12:00:00 UTC",
            "description": "Export the widget table as CSV.",
            "state": "opened",
            "iid": 12,
            "labels": [_label(301, "workflow::dev-ready")],
        },
    }


def mr_note_payload(note_id: int = 502, body: str = "Please rename this") -> dict[str, Any]:
    payload = issue_note_payload(note_id, body)
    del payload["issue"]
    payload["object_attributes"] = _note_attributes(note_id, body, "MergeRequest")
    payload["merge_request"] = {
        "id": 800,
        "target_branch": "main",
        "source_branch": "crewline/12-add-csv-export",
        "source_project_id": 42,
        "target_project_id": 42,
        "author_id": 7,
        "title": "Add CSV export",
        "state": "opened",
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "iid": 3,
        "labels": [],
        "work_in_progress": False,
        "draft": False,
    }
    return payload


def commit_note_payload() -> dict[str, Any]:
    payload = issue_note_payload(503, "Nice commit")
    del payload["issue"]
    payload["object_attributes"] = _note_attributes(503, "Nice commit", "Commit")
    payload["commit"] = {"id": "a" * 40, "message": "Add CSV export\n"}
    return payload


def merge_request_payload(iid: int = 3) -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": dict(_USER),
        "project": dict(_PROJECT),
        "repository": {"name": "Widgets", "url": "git@gitlab.example.com:acme/widgets.git"},
        "object_attributes": {
            "id": 800,
            "iid": iid,
            "target_branch": "main",
            "source_branch": "crewline/12-add-csv-export",
            "source_project_id": 42,
            "author_id": 7,
            "assignee_ids": [],
            "reviewer_ids": [],
            "title": "Add CSV export",
            "created_at": "2024-05-02T13:00:00Z",
            "updated_at": "2024-05-02T13:05:00Z",
            "milestone_id": None,
            "state_id": 1,
            "state": "opened",
            "blocking_discussions_resolved": True,
            "work_in_progress": False,
            "draft": False,
            "merge_status": "can_be_merged",
            "target_project_id": 42,
            "description": "Closes #12",
            "url": f"http://gitlab.example.com/acme/widgets/-/merge_requests/{iid}",
            "source": dict(_PROJECT),
            "target": dict(_PROJECT),
            "last_commit": {
                "id": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
                "message": "Add CSV export\n",
                "title": "Add CSV export",
                "timestamp": "2024-05-02T15:04:05+02:00",
                "url": "http://gitlab.example.com/acme/widgets/-/commit/3f2a1b0c",
                "author": {"name": "crewline", "email": "crewline@example.com"},
            },
            "labels": [_label(305, "workflow::review-ready")],
            "action": "open",
            "detailed_merge_status": "mergeable",
        },
        "labels": [_label(305, "workflow::review-ready")],
        "changes": {},
        "assignees": [],
        "reviewers": [],
    }


def _build(build_id: int, name: str, stage: str, status: str, reason: str | None) -> dict[str, Any]:
    return {
        "id": build_id,
        "stage": stage,
        "name": name,
        "status": status,
        "created_at": "2024-05-02 13:06:00 UTC",
        "started_at": "2024-05-02 13:06:10 UTC",
        "finished_at": "2024-05-02 13:07:00 UTC",
        "duration": 50.0,
        "queued_duration": 10.0,
        "failure_reason": reason,
        "when": "on_success",
        "manual": False,
        "allow_failure": False,
        "user": dict(_USER),
        "runner": None,
        "artifacts_file": {"filename": None, "size": None},
        "environment": None,
    }


def pipeline_payload(pipeline_id: int = 77) -> dict[str, Any]:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": 5,
            "name": None,
            "ref": "crewline/12-add-csv-export",
            "tag": False,
            "sha": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "before_sha": "0000000000000000000000000000000000000000",
            "source": "merge_request_event",
            "status": "failed",
            "detailed_status": "failed",
            "stages": ["lint", "test"],
            "created_at": "2024-05-02 13:06:00 UTC",
            "finished_at": "2024-05-02 13:07:00 UTC",
            "duration": 60,
            "variables": [],
            "url": f"http://gitlab.example.com/acme/widgets/-/pipelines/{pipeline_id}",
        },
        "merge_request": {
            "id": 800,
            "iid": 3,
            "title": "Add CSV export",
            "source_branch": "crewline/12-add-csv-export",
            "source_project_id": 42,
            "target_branch": "main",
            "target_project_id": 42,
            "state": "opened",
            "merge_status": "can_be_merged",
            "detailed_merge_status": "ci_still_running",
            "url": "http://gitlab.example.com/acme/widgets/-/merge_requests/3",
        },
        "user": dict(_USER),
        "project": dict(_PROJECT),
        "commit": {
            "id": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "message": "Add CSV export\n",
            "timestamp": "2024-05-02T15:04:05+02:00",
            "url": "http://gitlab.example.com/acme/widgets/-/commit/3f2a1b0c",
            "author": {"name": "crewline", "email": "crewline@example.com"},
        },
        "builds": [
            _build(1001, "ruff", "lint", "success", None),
            _build(1002, "pytest", "test", "failed", "script_failure"),
        ],
    }


def push_payload() -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "0" * 40,
        "after": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
        "ref": "refs/heads/main",
        "checkout_sha": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
        "user_username": "ada",
        "project_id": 42,
        "project": dict(_PROJECT),
        "commits": [],
        "total_commits_count": 0,
    }
