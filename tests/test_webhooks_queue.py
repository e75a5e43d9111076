"""The webhook receiver's delivery guarantees over real HTTP on loopback: redeliveries
are processed once, the answer never waits for the callback, a failing callback does
not stop the worker, a full queue asks GitLab to retry, and stop() drains the queue."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from pydantic import SecretStr

from forge.webhooks import WebhookEvent, WebhookReceiver, WebhookSettings
from tests.support.webhook_payloads import issue_payload, pipeline_payload
from tests.support.webhooks import SECRET, Gate, Recorder, StartReceiver, iid_of, post

# Fixtures are found by name in this module, hence the explicit re-export form.
from tests.support.webhooks import client as client
from tests.support.webhooks import recorded as recorded
from tests.support.webhooks import start_receiver as start_receiver


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


async def test_a_retry_with_the_same_idempotency_key_is_processed_once(
    client: aiohttp.ClientSession, recorded: tuple[Recorder, str]
) -> None:
    """GitLab 17.4+ keeps Idempotency-Key across retries of one delivery; the event UUID
    of a resend may differ."""
    recorder, url = recorded
    first = await post(client, url, issue_payload(12), uuid="u-1", idempotency_key="k-1")
    again = await post(client, url, issue_payload(12), uuid="u-2", idempotency_key="k-1")
    other = await post(client, url, issue_payload(12), uuid="u-2", idempotency_key="k-2")
    assert [r[:2] for r in (first, again, other)] == [
        (202, {"status": "queued"}), (200, {"status": "duplicate"}), (202, {"status": "queued"}),
    ]  # fmt: skip
    events = await recorder.wait_for(2)
    assert [iid_of(e) for e in events] == [12, 12]


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
    assert "1 queued event(s) not handed over" in caplog.text


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
