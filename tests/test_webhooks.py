"""The webhook receiver over real HTTP on loopback: authentication, limits, dedupe,
queueing, and the worker that hands typed events to the callback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from pydantic import SecretStr
from webhooks_support import (
    SECRET,
    Recorder,
    commit_note_payload,
    issue_note_payload,
    issue_payload,
    merge_request_payload,
    mr_note_payload,
    pipeline_payload,
    push_payload,
)

from forge.webhooks import (
    IssueEvent,
    MergeRequestEvent,
    NoteEvent,
    PipelineEvent,
    WebhookEvent,
    WebhookReceiver,
    WebhookSettings,
)

Callback = Callable[[WebhookEvent], Awaitable[None]]
StartReceiver = Callable[..., Awaitable[tuple[WebhookReceiver, str]]]

EVENT_NAMES = {
    "issue": "Issue Hook",
    "note": "Note Hook",
    "merge_request": "Merge Request Hook",
    "pipeline": "Pipeline Hook",
    "push": "Push Hook",
}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start_receiver() -> AsyncIterator[StartReceiver]:
    """Starts receivers on an ephemeral loopback port; stops them after the test."""
    started: list[WebhookReceiver] = []

    async def start(on_event: Callback, **settings: Any) -> tuple[WebhookReceiver, str]:
        config = WebhookSettings(port=0, max_body_bytes=4096, **settings)
        receiver = WebhookReceiver(SecretStr(SECRET), on_event, config)
        base_url = await receiver.start()
        started.append(receiver)
        return receiver, base_url + config.path

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def recorded(start_receiver: StartReceiver) -> tuple[Recorder, str]:
    recorder = Recorder()
    _, url = await start_receiver(recorder)
    return recorder, url


async def post(
    client: aiohttp.ClientSession,
    url: str,
    payload: Any,
    *,
    uuid: str | None = None,
    token: str | None = SECRET,
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    """POST like GitLab does; returns status, JSON body and headers."""
    headers = {"Content-Type": "application/json"}
    if isinstance(payload, dict):
        headers["X-Gitlab-Event"] = EVENT_NAMES.get(payload.get("object_kind", ""), "Unknown")
    if token is not None:
        headers["X-Gitlab-Token"] = token
    if uuid is not None:
        headers["X-Gitlab-Event-UUID"] = uuid
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with client.post(url, data=data, headers=headers) as response:
        return response.status, await response.json(), response.headers


class Gate:
    """A callback that records the start of each call, then blocks until released."""

    def __init__(self) -> None:
        self.started: list[WebhookEvent] = []
        self.finished: list[WebhookEvent] = []
        self.first_started = asyncio.Event()
        self.release = asyncio.Event()
        self.all_finished = asyncio.Condition()

    async def __call__(self, event: WebhookEvent) -> None:
        self.started.append(event)
        self.first_started.set()
        await self.release.wait()
        async with self.all_finished:
            self.finished.append(event)
            self.all_finished.notify_all()

    async def wait_finished(self, count: int) -> None:
        async with self.all_finished:
            await asyncio.wait_for(
                self.all_finished.wait_for(lambda: len(self.finished) >= count), 10
            )


def iid_of(event: WebhookEvent) -> int | None:
    return event.target_iid


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
async def test_malformed_json_is_400(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    raw: bytes,
    message_start: str,
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, raw, uuid="m1")
    assert status == 400
    assert body["error"].startswith(message_start)

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
async def test_known_kind_missing_field_is_400_naming_it(
    client: aiohttp.ClientSession,
    recorded: tuple[Recorder, str],
    payload: dict[str, Any],
    error: str,
) -> None:
    recorder, url = recorded
    status, body, _ = await post(client, url, payload, uuid="x1")
    assert (status, body) == (400, {"error": error})

    await post(client, url, issue_payload(4), uuid="x2")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [4]


async def test_oversize_body_with_content_length_is_413(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    payload = {**issue_payload(1), "padding": "x" * 5000}  # limit is 4096 bytes
    status, body, _ = await post(client, url, payload, uuid="big")
    assert (status, body) == (413, {"error": "request body is larger than 4096 bytes"})

    await post(client, url, issue_payload(2), uuid="small")
    assert [iid_of(e) for e in await recorder.wait_for(1)] == [2]


async def test_oversize_chunked_body_without_content_length_is_413(
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
        assert response.status == 413
        assert await response.json() == {"error": "request body is larger than 4096 bytes"}

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


async def test_redelivery_with_same_uuid_is_processed_once(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    first = await post(client, url, issue_payload(12), uuid="dup-1")
    again = await post(client, url, issue_payload(12), uuid="dup-1")
    assert first[:2] == (202, {"status": "queued"})
    assert again[:2] == (200, {"status": "duplicate"})

    await post(client, url, issue_payload(13), uuid="dup-2")
    events = await recorder.wait_for(2)
    assert [iid_of(e) for e in events] == [12, 13]


async def test_concurrent_redeliveries_queue_one_event(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    answers = await asyncio.gather(
        *(post(client, url, pipeline_payload(77), uuid="race") for _ in range(5))
    )
    assert sorted(status for status, _, _ in answers) == [200, 200, 200, 200, 202]

    await post(client, url, issue_payload(1), uuid="marker")
    events = await recorder.wait_for(2)
    assert [e.kind for e in events] == ["pipeline", "issue"]


async def test_one_uuid_for_two_different_events_processes_both(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    # GitLab shares X-Gitlab-Event-UUID among the hooks one request triggers, e.g. an
    # MR merge closing issues #1 and #2: both must reach the engine.
    recorder, url = recorded
    await post(client, url, issue_payload(1), uuid="one-request")
    await post(client, url, issue_payload(2), uuid="one-request")
    assert [iid_of(e) for e in await recorder.wait_for(2)] == [1, 2]


async def test_events_without_uuid_are_all_processed(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    recorder, url = recorded
    for _ in range(2):
        status, _, _ = await post(client, url, issue_payload(8), uuid=None)
        assert status == 202
    events = await recorder.wait_for(2)
    assert [(iid_of(e), e.uuid) for e in events] == [(8, None), (8, None)]


# -- the worker ----------------------------------------------------------------------


async def test_slow_callback_does_not_delay_the_answer(
    client: aiohttp.ClientSession, start_receiver: StartReceiver
) -> None:
    gate = Gate()
    _, url = await start_receiver(gate)

    status, _, _ = await post(client, url, issue_payload(1), uuid="slow")
    # The answer is here while the callback cannot have finished: it waits on release.
    assert status == 202
    assert gate.finished == []
    await asyncio.wait_for(gate.first_started.wait(), 10)
    assert [iid_of(e) for e in gate.started] == [1]

    gate.release.set()
    await gate.wait_finished(1)
    assert [iid_of(e) for e in gate.finished] == [1]


async def test_failing_callback_is_logged_and_later_events_still_arrive(
    client: aiohttp.ClientSession,
    start_receiver: StartReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()

    async def flaky(event: WebhookEvent) -> None:
        if event.target_iid == 1:
            raise RuntimeError("engine exploded")
        await recorder(event)

    _, url = await start_receiver(flaky)
    caplog.set_level(logging.ERROR, logger="forge.webhooks")
    await post(client, url, issue_payload(1), uuid="boom")
    await post(client, url, issue_payload(2), uuid="fine")

    assert [iid_of(e) for e in await recorder.wait_for(1)] == [2]
    [failure] = [r for r in caplog.records if "callback failed" in r.getMessage()]
    assert "kind=issue project=acme/widgets iid=1 uuid=boom" in failure.getMessage()
    assert failure.exc_info is not None and "engine exploded" in str(failure.exc_info[1])
    assert SECRET not in caplog.text


async def test_full_queue_is_503_and_redelivery_is_accepted(
    client: aiohttp.ClientSession, start_receiver: StartReceiver
) -> None:
    gate = Gate()
    _, url = await start_receiver(gate, queue_size=1)

    await post(client, url, issue_payload(1), uuid="a")
    await asyncio.wait_for(gate.first_started.wait(), 10)  # the worker holds A, queue empty
    queued = await post(client, url, issue_payload(2), uuid="b")  # fills the queue
    full = await post(client, url, issue_payload(3), uuid="c")
    assert queued[:2] == (202, {"status": "queued"})
    assert full[:2] == (503, {"error": "event queue is full, retry later"})
    assert int(full[2]["Retry-After"]) > 0

    gate.release.set()
    await gate.wait_finished(2)
    redelivered = await post(client, url, issue_payload(3), uuid="c")
    assert redelivered[:2] == (202, {"status": "queued"})
    await gate.wait_finished(3)
    assert [iid_of(e) for e in gate.finished] == [1, 2, 3]


class ReleaseWhenDraining(logging.Handler):
    """Opens a gate when the receiver logs that it is draining: by then it has stopped
    listening, so the events still queued can only be delivered by the drain."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("webhook receiver draining"):
            self.gate.release.set()


async def test_stop_drains_queued_events(
    client: aiohttp.ClientSession, start_receiver: StartReceiver
) -> None:
    gate = Gate()
    receiver, url = await start_receiver(gate)
    for iid in (1, 2, 3):
        assert (await post(client, url, issue_payload(iid), uuid=f"d{iid}"))[0] == 202
    await asyncio.wait_for(gate.first_started.wait(), 10)
    assert receiver.pending == 2

    receiver_log = logging.getLogger("forge.webhooks.receiver")
    handler = ReleaseWhenDraining(gate)
    receiver_log.addHandler(handler)
    previous_level = receiver_log.level
    receiver_log.setLevel(logging.INFO)
    try:
        await receiver.stop()
    finally:
        receiver_log.removeHandler(handler)
        receiver_log.setLevel(previous_level)
    assert [iid_of(e) for e in gate.finished] == [1, 2, 3]
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, url, issue_payload(4), uuid="late")


async def test_stop_gives_up_after_the_drain_timeout(
    client: aiohttp.ClientSession,
    start_receiver: StartReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()  # never released: the callback would block forever
    receiver, url = await start_receiver(gate, drain_timeout_seconds=0)
    await post(client, url, issue_payload(1), uuid="s1")
    await post(client, url, issue_payload(2), uuid="s2")
    await asyncio.wait_for(gate.first_started.wait(), 10)

    caplog.set_level(logging.WARNING, logger="forge.webhooks")
    await receiver.stop()
    assert gate.finished == []
    assert [iid_of(e) for e in gate.started] == [1]
    assert "1 event(s) not handed over" in caplog.text


# -- lifecycle -----------------------------------------------------------------------


async def test_start_reports_bound_url_and_a_busy_port_is_a_clear_error(
    start_receiver: StartReceiver,
) -> None:
    receiver, url = await start_receiver(Recorder())
    assert receiver.base_url is not None
    assert url == receiver.base_url + "/webhooks/gitlab"
    port = int(receiver.base_url.rsplit(":", 1)[1])
    assert port > 0

    busy = WebhookReceiver(SecretStr(SECRET), Recorder(), WebhookSettings(port=port))
    with pytest.raises(OSError, match=rf"cannot listen for GitLab webhooks on 127.0.0.1:{port}"):
        await busy.start()


def test_empty_secret_is_refused_and_secret_never_in_repr() -> None:
    with pytest.raises(ValueError, match="CREWLINE_WEBHOOK_SECRET"):
        WebhookReceiver(SecretStr(""), Recorder(), WebhookSettings())
    receiver = WebhookReceiver(SecretStr(SECRET), Recorder(), WebhookSettings())
    assert SECRET not in repr(receiver)
    assert SECRET not in repr(vars(receiver))
