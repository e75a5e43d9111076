"""The webhook receiver over real HTTP on loopback: typed events reach the callback;
bad tokens, malformed or oversize bodies and missing fields are refused and never
processed; kinds crewline does not handle are accepted and ignored."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from forge.webhooks import IssueEvent, MergeRequestEvent, NoteEvent, PipelineEvent
from tests.support.webhook_payloads import (
    commit_note_payload,
    issue_note_payload,
    issue_payload,
    merge_request_payload,
    mr_note_payload,
    pipeline_payload,
    push_payload,
)
from tests.support.webhooks import SECRET, Recorder, iid_of, post

# Fixtures are found by name in this module, hence the explicit re-export form.
from tests.support.webhooks import client as client
from tests.support.webhooks import recorded as recorded
from tests.support.webhooks import start_receiver as start_receiver

# -- typed events reach the callback --------------------------------------------------


async def test_issue_event_reaches_callback_typed(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, issue_payload(12), uuid="uuid-issue-1")
    assert (status, body) == (202, {"status": "queued"})

    [event] = await recorder.wait_for(1)
    assert isinstance(event, IssueEvent)
    assert event.kind == "issue"
    assert event.uuid == "uuid-issue-1"
    assert (event.project_id, event.project_path, event.iid) == (42, "acme/widgets", 12)
    assert (event.action, event.state) == ("update", "opened")
    assert event.labels == ["workflow::dev-ready", "backend"]
    assert event.previous_labels == ["workflow::plan-review", "backend"]
    assert event.current_labels == ["workflow::dev-ready", "backend"]
    assert event.updated_at == datetime(2024, 5, 2, 11, 30, 15, tzinfo=UTC)
    assert event.received_at.tzinfo is not None


async def test_notes_on_issue_and_merge_request_reach_callback_typed(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    await post(client, url, issue_note_payload(501, "Looks good to me"), uuid="n1")
    await post(client, url, mr_note_payload(502, "Please rename this"), uuid="n2")

    on_issue, on_mr = await recorder.wait_for(2)
    assert isinstance(on_issue, NoteEvent) and isinstance(on_mr, NoteEvent)
    assert on_issue.noteable_type == "Issue"
    assert (on_issue.issue_iid, on_issue.mr_iid, on_issue.target_iid) == (12, None, 12)
    assert (on_issue.note_id, on_issue.body, on_issue.author_username) == (
        501,
        "Looks good to me",
        "ada",
    )
    assert (on_issue.action, on_issue.system) == ("create", False)
    assert on_mr.noteable_type == "MergeRequest"
    assert (on_mr.issue_iid, on_mr.mr_iid, on_mr.target_iid) == (None, 3, 3)
    assert (on_mr.note_id, on_mr.body, on_mr.project_path) == (
        502,
        "Please rename this",
        "acme/widgets",
    )


async def test_merge_request_event_reaches_callback_typed(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    await post(client, url, merge_request_payload(3), uuid="mr-1")

    [event] = await recorder.wait_for(1)
    assert isinstance(event, MergeRequestEvent)
    assert (event.project_id, event.iid, event.action, event.state) == (42, 3, "open", "opened")
    assert (event.source_branch, event.target_branch) == ("crewline/12-add-csv-export", "main")
    assert event.last_commit_sha == "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
    assert event.detailed_merge_status == "mergeable"
    assert event.labels == ["workflow::review-ready"]


async def test_pipeline_event_reaches_callback_typed(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    await post(client, url, pipeline_payload(77), uuid="pipe-1")

    [event] = await recorder.wait_for(1)
    assert isinstance(event, PipelineEvent)
    assert (event.pipeline_id, event.status, event.source) == (77, "failed", "merge_request_event")
    assert (event.ref, event.sha) == (
        "crewline/12-add-csv-export",
        "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
    )
    assert event.merge_request_iid == 3
    assert [(b.name, b.stage, b.status, b.failure_reason) for b in event.builds] == [
        ("ruff", "lint", "success", None),
        ("pytest", "test", "failed", "script_failure"),
    ]


# -- refusals: nothing is processed ----------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong-token", SECRET[:-1], SECRET + "x", SECRET.upper()],
    ids=["missing", "empty", "wrong", "prefix", "longer", "case"],
)
async def test_bad_token_is_refused_and_never_processed(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    token: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder, url = recorded
    caplog.set_level(logging.DEBUG)
    status, body, _ = await post(client, url, issue_payload(1), uuid="bad", token=token)
    assert (status, body) == (401, {"error": "invalid X-Gitlab-Token"})

    # The worker hands events over in order: had the refused one been queued, it
    # would arrive before this one.
    await post(client, url, issue_payload(2), uuid="good")
    events = await recorder.wait_for(1)
    assert [iid_of(event) for event in events] == [2]
    assert SECRET not in caplog.text


async def test_refused_token_does_not_burn_the_uuid(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    await post(client, url, issue_payload(5), uuid="same", token="nope")
    status, body, _ = await post(client, url, issue_payload(5), uuid="same")
    assert (status, body) == (202, {"status": "queued"})
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [5]


@pytest.mark.parametrize(
    ("raw", "message_start"),
    [
        (b'{"object_kind": "issue",', "malformed JSON: "),
        (b"\xff\xfe not utf-8", "malformed JSON: "),
        (b"", "malformed JSON: "),
        (b'["not", "an", "object"]', "malformed JSON: expected an object"),
    ],
    ids=["truncated", "not-utf8", "empty", "array"],
)
async def test_malformed_json_is_ignored_with_200(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    raw: bytes,
    message_start: str,
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, raw, uuid="m1")
    assert status == 200
    assert body["status"] == "ignored"
    assert body["reason"].startswith(message_start)

    await post(client, url, issue_payload(9), uuid="m2")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [9]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            {k: v for k, v in issue_payload().items() if k != "object_kind"},
            "object_kind is missing",
        ),
        (
            {**issue_payload(), "object_attributes": {"state": "opened", "action": "open"}},
            "object_attributes.iid is missing",
        ),
        (
            {**merge_request_payload(), "project": {"id": "42"}},
            "project.id is invalid: expected an integer, got str",
        ),
        (
            {k: v for k, v in issue_note_payload().items() if k != "issue"},
            "issue.iid is missing",
        ),
        (
            {**pipeline_payload(), "builds": [{"id": 1, "name": "x", "stage": "test"}]},
            "builds[0].status is missing",
        ),
    ],
    ids=["no-kind", "issue-no-iid", "mr-project-id-str", "note-no-issue", "build-no-status"],
)
async def test_known_kind_missing_field_is_ignored_naming_it(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    payload: dict[str, Any],
    error: str,
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, payload, uuid="x1")
    assert (status, body) == (200, {"status": "ignored", "reason": error})

    await post(client, url, issue_payload(4), uuid="x2")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [4]


async def test_oversize_body_with_content_length_is_ignored(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    payload = {**issue_payload(1), "padding": "x" * 5000}  # limit is 4096 bytes
    status, body, _ = await post(client, url, payload, uuid="big")
    assert (status, body) == (
        200,
        {"status": "ignored", "reason": "request body is larger than 4096 bytes"},
    )

    await post(client, url, issue_payload(2), uuid="small")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [2]


async def test_oversize_chunked_body_without_content_length_is_ignored(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    raw = json.dumps({**issue_payload(1), "padding": "x" * 5000}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    headers = {"X-Gitlab-Token": SECRET, "Content-Type": "application/json"}
    async with client.post(url, data=chunks(), headers=headers) as response:
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in response.request_info.headers
        assert response.status == 200
        assert await response.json() == {
            "status": "ignored",
            "reason": "request body is larger than 4096 bytes",
        }

    await post(client, url, issue_payload(2), uuid="small")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [2]


async def test_body_of_exactly_the_limit_is_accepted(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    payload = {**issue_payload(3), "padding": ""}
    payload["padding"] = "x" * (4096 - len(json.dumps(payload).encode()))
    assert len(json.dumps(payload).encode()) == 4096
    status, _, _ = await post(client, url, payload, uuid="exact")
    assert status == 202
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [3]


async def test_other_methods_are_405_and_health_is_ok(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    _, url = recorded
    async with client.get(url, headers={"X-Gitlab-Token": SECRET}) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
    health_url = url.rsplit("/webhooks/gitlab", 1)[0] + "/healthz"
    async with client.get(health_url) as response:
        assert (response.status, await response.text()) == (200, "ok")


# -- ignored kinds and duplicates -------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push_payload(), "object_kind 'push' is not handled"),
        (
            {"object_kind": "wiki_page", "object_attributes": {}},
            "object_kind 'wiki_page' is not handled",
        ),
        (commit_note_payload(), "comments on 'Commit' are not handled"),
    ],
    ids=["push", "wiki", "commit-note"],
)
async def test_unhandled_kinds_are_accepted_and_ignored(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    payload: dict[str, Any],
    reason: str,
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, payload, uuid="ignored")
    assert (status, body) == (200, {"status": "ignored", "reason": reason})

    await post(client, url, issue_payload(6), uuid="after")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [6]
