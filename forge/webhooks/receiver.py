"""The HTTP endpoint GitLab posts webhooks to.

A request is checked (method, ``X-Gitlab-Token``, size, JSON, required fields), turned
into a typed event and put on a bounded queue; the answer goes back at once, well
inside GitLab's 10 s timeout. One background worker hands queued events to the
callback, so a slow engine never makes GitLab wait and a failing one never stops
later events.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from forge import metrics
from forge.listen import listen
from forge.webhooks.events import WebhookEvent
from forge.webhooks.parse import Ignored, PayloadError, parse_event
from forge.webhooks.settings import HEALTH_PATH, WebhookSettings

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Gitlab-Token"
EVENT_UUID_HEADER = "X-Gitlab-Event-UUID"
# The same on every retry of one hook delivery (GitLab 17.4+); a resend may get a new UUID.
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_NAME_HEADER = "X-Gitlab-Event"
RETRY_AFTER_SECONDS = 30
_READ_CHUNK = 64 * 1024

EventCallback = Callable[[WebhookEvent], Awaitable[None]]


class RecentDeliveries:
    """The last ``capacity`` delivery keys accepted; the oldest is forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def remember(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)


def delivery_key(event_uuid: str, payload: Any) -> str:
    """What identifies a redelivery: the event UUID and the payload itself.

    GitLab's ``X-Gitlab-Event-UUID`` is shared by every hook one request triggers (for
    instance one merge closing two issues sends two issue hooks with the same UUID),
    while a redelivery resends the same payload. The UUID alone would drop real events.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return f"{event_uuid}:{hashlib.sha256(canonical).hexdigest()}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _unusable(request: web.Request, reason: str) -> web.Response:
    """A delivery whose body cannot be used is still answered 2xx.

    GitLab disables a hook after repeated 4xx answers, and an event only wakes the engine
    early: the poll finds the same work. So a body we cannot read is logged and dropped
    rather than refused (a wrong token is still 401: that is a misconfiguration to see).
    """
    metrics.WEBHOOK_EVENTS.labels("unusable").inc()
    log.warning(
        "webhook ignored, body unusable: %s (event=%s uuid=%s)",
        reason,
        request.headers.get(EVENT_NAME_HEADER),
        request.headers.get(EVENT_UUID_HEADER),
    )
    return web.json_response({"status": "ignored", "reason": reason}, status=200)


class WebhookReceiver:
    """Receives GitLab issue, note, merge request and pipeline hooks and hands them,
    typed, to ``on_event``, one at a time, in arrival order."""

    def __init__(
        self,
        secret: SecretStr,
        on_event: EventCallback,
        settings: WebhookSettings | None = None,
    ) -> None:
        if not secret.get_secret_value():
            # An empty secret would accept every request that simply omits the header.
            raise ValueError(
                "the webhook secret is empty: set CREWLINE_WEBHOOK_SECRET to the secret "
                "token configured on the GitLab webhook"
            )
        self._secret = secret  # kept wrapped so no repr or traceback shows it
        self._on_event = on_event
        self._settings = settings or WebhookSettings()
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue(self._settings.queue_size)
        self._seen = RecentDeliveries(self._settings.dedupe_window)
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        return f"WebhookReceiver(path={self._settings.path!r}, base_url={self._base_url!r})"

    @property
    def settings(self) -> WebhookSettings:
        return self._settings

    @property
    def base_url(self) -> str | None:
        """``http://host:port`` once :meth:`start` has bound; ``None`` before."""
        return self._base_url

    @property
    def pending(self) -> int:
        """Events queued and not yet handed to the callback."""
        return self._queue.qsize()

    # -- lifecycle -------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application: POST ``settings.path`` and GET ``/healthz``. The worker
        starts with the application and drains the queue when it is cleaned up, so the
        app can also be served by any aiohttp runner."""
        app = web.Application()
        app.router.add_route("*", self._settings.path, self._handle)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(metrics.METRICS_PATH, metrics.handler)
        app.on_startup.append(self._start_worker)
        app.on_cleanup.append(self._stop_worker)
        return app

    async def start(self) -> str:
        """Listen on ``settings.host:settings.port`` (port 0 picks a free one) and return
        the base URL actually bound, e.g. ``http://127.0.0.1:8930``."""
        if self._runner is not None:
            raise RuntimeError("the webhook receiver is already started")
        self._runner, self._base_url = await listen(
            self.app(),
            self._settings.host,
            self._settings.port,
            serving="listen for GitLab webhooks",
            setting="[webhook]",
        )
        log.info("webhook receiver listening on %s%s", self._base_url, self._settings.path)
        return self._base_url

    async def stop(self) -> None:
        """Stop accepting requests, hand queued events to the callback for at most
        ``settings.drain_timeout_seconds``, then stop the worker."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._base_url = None

    async def _start_worker(self, _app: web.Application) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="webhook-worker")

    async def _stop_worker(self, _app: web.Application) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        timeout = self._settings.drain_timeout_seconds
        log.info(
            "webhook receiver draining: %d queued event(s), up to %.1fs",
            self._queue.qsize(),
            timeout,
        )
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning(
                "webhook receiver gave up draining after %.1fs: the event in progress is "
                "cancelled and %d queued event(s) not handed over; polling will catch up",
                timeout,
                self._queue.qsize(),
            )
        worker.cancel()
        # wait() rather than await: the worker's own cancellation is expected here.
        await asyncio.wait([worker])

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._on_event(event)
            except Exception:
                log.exception("webhook event callback failed: %s", event.log_context())
            finally:
                self._queue.task_done()

    # -- requests --------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _error(
                405, "method not allowed: GitLab webhooks are POST requests", {"Allow": "POST"}
            )
        if not self._token_matches(request.headers.get(TOKEN_HEADER)):
            log.warning("webhook refused: invalid %s from %s", TOKEN_HEADER, request.remote)
            metrics.WEBHOOK_EVENTS.labels("unauthorized").inc()
            return _error(401, f"invalid {TOKEN_HEADER}")
        body = await self._read_body(request)
        if body is None:
            limit = self._settings.max_body_bytes
            return _unusable(request, f"request body is larger than {limit} bytes")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _unusable(request, f"malformed JSON: {exc}")
        if not isinstance(payload, dict):
            return _unusable(request, "malformed JSON: expected an object at the top level")

        event_uuid = request.headers.get(EVENT_UUID_HEADER) or None
        try:
            parsed = parse_event(payload, uuid=event_uuid, received_at=datetime.now(UTC))
        except PayloadError as exc:
            return _unusable(request, str(exc))
        if isinstance(parsed, Ignored):
            log.debug("webhook ignored: %s (uuid=%s)", parsed.reason, event_uuid)
            metrics.WEBHOOK_EVENTS.labels("ignored").inc()
            return web.json_response({"status": "ignored", "reason": parsed.reason})
        idempotency = request.headers.get(IDEMPOTENCY_HEADER)
        if idempotency:
            key: str | None = f"idempotency:{idempotency}"
        else:
            key = delivery_key(event_uuid, payload) if event_uuid else None
        return self._enqueue(parsed, key)

    def _token_matches(self, provided: str | None) -> bool:
        try:
            candidate = (provided or "").encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            candidate = b""
        # Compare even when the header is missing so every refusal costs the same.
        matches = hmac.compare_digest(candidate, self._secret.get_secret_value().encode())
        return matches and provided is not None

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or ``None`` as soon as it is known to exceed ``max_body_bytes``
        (from Content-Length, or while streaming a chunked body)."""
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _enqueue(self, event: WebhookEvent, key: str | None) -> web.Response:
        # No await between the duplicate check and remember(): two concurrent
        # deliveries of the same event cannot both be queued.
        if key is not None and key in self._seen:
            log.info("webhook duplicate dropped: %s", event.log_context())
            metrics.WEBHOOK_EVENTS.labels("duplicate").inc()
            return web.json_response({"status": "duplicate"})
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # Not remembered: a redelivery must be processed.
            log.warning("webhook queue full, asking GitLab to retry: %s", event.log_context())
            metrics.WEBHOOK_EVENTS.labels("queue_full").inc()
            return _error(
                503,
                "event queue is full, retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if key is not None:
            self._seen.remember(key)
        log.debug("webhook queued: %s", event.log_context())
        metrics.WEBHOOK_EVENTS.labels("queued").inc()
        return web.json_response({"status": "queued"}, status=202)
