"""Support for the webhook tests: fixtures that run receivers on loopback, and recording
callbacks. The sample GitLab payloads are in :mod:`tests.support.webhook_payloads`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from pydantic import SecretStr

from forge.webhooks import WebhookEvent, WebhookReceiver, WebhookSettings

SECRET = "s3cret-webhook-token-for-tests"


class Recorder:
    """An ``on_event`` callback that records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: WebhookEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[WebhookEvent]:
        """Wait until ``count`` events have arrived (a guard timeout, not an assertion)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.events) >= count), 10)
        return self.events


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
    idempotency_key: str | None = None,
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    """POST like GitLab does; returns status, JSON body and headers."""
    headers = {"Content-Type": "application/json"}
    if isinstance(payload, dict):
        headers["X-Gitlab-Event"] = EVENT_NAMES.get(payload.get("object_kind", ""), "Unknown")
    if token is not None:
        headers["X-Gitlab-Token"] = token
    if uuid is not None:
        headers["X-Gitlab-Event-UUID"] = uuid
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
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
