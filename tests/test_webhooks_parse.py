"""Parsing GitLab payloads into typed events, the dedupe memory, and the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from forge.webhooks import (
    Ignored,
    IssueEvent,
    MergeRequestEvent,
    NoteEvent,
    PayloadError,
    PipelineEvent,
    WebhookEvent,
    WebhookSettings,
    parse_event,
)
from forge.webhooks.parse import parse_gitlab_time
from forge.webhooks.receiver import RecentDeliveries, delivery_key
from tests.support.webhook_payloads import (
    issue_note_payload,
    issue_payload,
    merge_request_payload,
    pipeline_payload,
)

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)


def parse(payload: dict[str, Any]) -> WebhookEvent | Ignored:
    return parse_event(payload, uuid="u-1", received_at=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-12-03T17:15:43Z", datetime(2013, 12, 3, 17, 15, 43, tzinfo=UTC)),
        ("2015-05-17 18:08:09 UTC", datetime(2015, 5, 17, 18, 8, 9, tzinfo=UTC)),
        ("2019-06-05T14:32:20.211Z", datetime(2019, 6, 5, 14, 32, 20, 211000, tzinfo=UTC)),
        (
            "2012-01-03T23:36:29+02:00",
            datetime(2012, 1, 3, 23, 36, 29, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_gitlab_timestamps_in_every_documented_format(text: str, expected: datetime) -> None:
    assert parse_gitlab_time(text) == expected


def test_issue_without_label_change_has_no_previous_or_current_labels() -> None:
    event = parse(issue_payload(4, with_label_change=False))
    assert isinstance(event, IssueEvent)
    assert event.labels == ["workflow::dev-ready", "backend"]
    assert (event.previous_labels, event.current_labels, event.labels_changed) == (
        None,
        None,
        False,
    )
    assert (event.uuid, event.received_at) == ("u-1", NOW)


def test_issue_labels_fall_back_to_the_top_level_list() -> None:
    payload = issue_payload(4)
    del payload["object_attributes"]["labels"]
    event = parse(payload)
    assert isinstance(event, IssueEvent)
    assert event.labels == ["workflow::dev-ready", "backend"]
    assert event.labels_changed


def test_issue_updated_at_that_is_not_a_timestamp_is_named() -> None:
    payload = issue_payload(4)
    payload["object_attributes"]["updated_at"] = "yesterday"
    with pytest.raises(PayloadError, match=r"^object_attributes.updated_at is invalid"):
        parse(payload)


def test_label_without_title_is_named_by_position() -> None:
    payload = issue_payload(4)
    del payload["changes"]["labels"]["previous"][1]["title"]
    with pytest.raises(PayloadError, match=r"^changes.labels.previous\[1\].title is missing$"):
        parse(payload)


def test_boolean_is_not_accepted_as_an_id() -> None:
    payload = issue_payload(4)
    payload["object_attributes"]["iid"] = True
    with pytest.raises(
        PayloadError, match=r"^object_attributes.iid is invalid: expected an integer, got bool$"
    ):
        parse(payload)


def test_system_note_is_flagged() -> None:
    payload = issue_note_payload(600, "added ~workflow::dev-ready label")
    payload["object_attributes"]["system"] = True
    event = parse(payload)
    assert isinstance(event, NoteEvent)
    assert event.system
    assert event.log_context() == "kind=note project=acme/widgets iid=12 uuid=u-1"


def test_merge_request_without_commits_or_merge_status() -> None:
    payload = merge_request_payload(9)
    attributes = payload["object_attributes"]
    attributes["last_commit"] = None
    del attributes["detailed_merge_status"]
    event = parse(payload)
    assert isinstance(event, MergeRequestEvent)
    assert (event.iid, event.last_commit_sha, event.detailed_merge_status) == (9, None, None)


def test_branch_pipeline_has_no_merge_request_and_may_list_no_builds() -> None:
    payload = pipeline_payload(78)
    payload["merge_request"] = None
    payload["object_attributes"]["source"] = "push"
    del payload["builds"]
    event = parse(payload)
    assert isinstance(event, PipelineEvent)
    assert (event.pipeline_id, event.source, event.merge_request_iid, event.builds) == (
        78,
        "push",
        None,
        [],
    )
    assert event.target_iid is None


def test_events_are_immutable() -> None:
    event = parse(merge_request_payload())
    with pytest.raises(ValidationError):
        event.iid = 99  # type: ignore[union-attr]


def test_delivery_key_depends_on_uuid_and_payload_not_on_key_order() -> None:
    payload = issue_payload(1)
    reordered = dict(reversed(list(payload.items())))
    assert delivery_key("u", payload) == delivery_key("u", reordered)
    assert delivery_key("u", payload) != delivery_key("v", payload)
    assert delivery_key("u", payload) != delivery_key("u", issue_payload(2))


def test_recent_deliveries_forget_the_oldest_beyond_the_window() -> None:
    seen = RecentDeliveries(capacity=2)
    for key in ("a", "b", "c"):
        seen.remember(key)
    assert ("a" in seen, "b" in seen, "c" in seen, len(seen)) == (False, True, True, 2)
    seen.remember("b")  # seen again: becomes the newest
    seen.remember("d")
    assert ("b" in seen, "c" in seen, "d" in seen) == (True, False, True)


def test_settings_defaults() -> None:
    settings = WebhookSettings()
    assert (settings.enabled, settings.host, settings.port, settings.path) == (
        True,
        "127.0.0.1",
        8930,
        "/webhooks/gitlab",
    )
    assert (settings.max_body_bytes, settings.queue_size, settings.dedupe_window) == (
        1_048_576,
        1000,
        10_000,
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"path": "webhooks/gitlab"}, "path", "starting with '/'"),
        ({"path": "/healthz"}, "path", "health check"),
        ({"path": "/metrics"}, "path", "/metrics is the metrics; choose another path"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"queue_size": 0}, "queue_size", "greater than or equal to 1"),
        ({"secret": "x"}, "secret", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_key_and_what_was_expected(
    values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        WebhookSettings(**values)
    [error] = raised.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]
