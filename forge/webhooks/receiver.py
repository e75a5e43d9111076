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

from pydantic import SecretStr

from forge import metrics
from forge.http_serve import HttpServer, Request, Response, Route, probe_routes
from forge.webhooks.events import WebhookEvent
from forge.webhooks.parse import Ignored, PayloadError, parse_event
from forge.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Gitlab-Token"
EVENT_UUID_HEADER = "X-Gitlab-Event-UUID"
# The same on every retry of one hook delivery (GitLab 17.4+); a resend may get a new UUID.
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_NAME_HEADER = "X-Gitlab-Event"
RETRY_AFTER_SECONDS = 30

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


def _json(
    payload: dict[str, str], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json", headers or {})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


def _unusable(request: Request, reason: str) -> Response:
    """A delivery whose body cannot be used is still answered 2xx.

    GitLab disables a hook after repeated 4xx answers, and an event only wakes the engine
    early: the poll finds the same work. So a body we cannot read is logged and dropped
    rather than refused (a wrong token is still 401: that is a misconfiguration to see).
    """
    metrics.WEBHOOK_EVENTS.labels("unusable").inc()
    log.warning(
        "webhook ignored, body unusable: %s (event=%s uuid=%s)",
        reason,
        request.header(EVENT_NAME_HEADER),
        request.header(EVENT_UUID_HEADER),
    )
    return _json({"status": "ignored", "reason": reason})


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
        self._server: HttpServer | None = None
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

    def routes(self) -> dict[str, Route]:
        """Every method reaches ``settings.path`` (anything but POST is answered 405 there,
        saying why); ``/healthz`` and ``/metrics`` answer GET."""
        hook = Route(self._handle, methods=None, max_body_bytes=self._settings.max_body_bytes)
        return {**probe_routes(), self._settings.path: hook}

    async def start(self) -> str:
        """Listen on ``settings.host:settings.port`` (port 0 picks a free one) and return
        the base URL actually bound, e.g. ``http://127.0.0.1:8930``."""
        if self._server is not None:
            raise RuntimeError("the webhook receiver is already started")
        server = HttpServer(self.routes())
        self._base_url = await server.start(
            self._settings.host,
            self._settings.port,
            serving="listen for GitLab webhooks",
            setting="[webhook]",
        )
        self._server = server
        self._worker = asyncio.create_task(self._work(), name="webhook-worker")
        log.info("webhook receiver listening on %s%s", self._base_url, self._settings.path)
        return self._base_url

    async def stop(self) -> None:
        """Stop accepting requests, hand queued events to the callback for at most
        ``settings.drain_timeout_seconds``, then stop the worker."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            await self._stop_worker()
        self._base_url = None

    async def _stop_worker(self) -> None:
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

    async def _handle(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(
                405, "method not allowed: GitLab webhooks are POST requests", {"Allow": "POST"}
            )
        if not self._token_matches(request.header(TOKEN_HEADER)):
            log.warning("webhook refused: invalid %s from %s", TOKEN_HEADER, request.remote)
            metrics.WEBHOOK_EVENTS.labels("unauthorized").inc()
            return _error(401, f"invalid {TOKEN_HEADER}")
        body = request.body
        if body is None:
            limit = self._settings.max_body_bytes
            return _unusable(request, f"request body is larger than {limit} bytes")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _unusable(request, f"malformed JSON: {exc}")
        if not isinstance(payload, dict):
            return _unusable(request, "malformed JSON: expected an object at the top level")

        event_uuid = request.header(EVENT_UUID_HEADER) or None
        try:
            parsed = parse_event(payload, uuid=event_uuid, received_at=datetime.now(UTC))
        except PayloadError as exc:
            return _unusable(request, str(exc))
        if isinstance(parsed, Ignored):
            log.debug("webhook ignored: %s (uuid=%s)", parsed.reason, event_uuid)
            metrics.WEBHOOK_EVENTS.labels("ignored").inc()
            return _json({"status": "ignored", "reason": parsed.reason})
        idempotency = request.header(IDEMPOTENCY_HEADER)
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

    def _enqueue(self, event: WebhookEvent, key: str | None) -> Response:
        # No await between the duplicate check and remember(): two concurrent
        # deliveries of the same event cannot both be queued.
        if key is not None and key in self._seen:
            log.info("webhook duplicate dropped: %s", event.log_context())
            metrics.WEBHOOK_EVENTS.labels("duplicate").inc()
            return _json({"status": "duplicate"})
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
        return _json({"status": "queued"}, 202)
