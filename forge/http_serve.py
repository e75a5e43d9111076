"""A small HTTP/1.1 server for crewline's own listeners: the webhook receiver and the
observability paths (``/metrics``, ``/healthz``, ``/readyz``).

Why not aiohttp: importing ``aiohttp.web`` costs about 10 MB of an idle host's 70, for a
handful of short requests a minute. The protocol itself is ``h11`` (python-hyper's HTTP/1.1
state machine, no dependencies, well under 1 MB): it parses and validates; this module only
routes, bounds and times (docs/decisions/0046).

Every connection serves one request and is closed (``Connection: close``): GitLab and
Prometheus open a connection per request anyway. What a stranger can send is bounded: the
request head (``MAX_HEAD_BYTES``), the body (per route; a larger body reaches the handler as
``None`` without being read further), the time a whole request may take to arrive
(``REQUEST_TIMEOUT_SECONDS``, so a slow sender cannot hold a connection) and the number of
connections served at once (the rest are closed at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import h11

from forge import metrics

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64
_READ_SIZE = 64 * 1024
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 401: b"Unauthorized"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes | None  # None: larger than the route's limit (not read to its end)
    remote: str | None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode())


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    methods: frozenset[str] | None = frozenset({"GET"})  # None: every method reaches it
    max_body_bytes: int = 0


async def _healthy(_request: Request) -> Response:
    return Response.text("ok")


def probe_routes() -> dict[str, Route]:
    """``/healthz`` (the process answers) and ``/metrics``, on every crewline listener."""
    return {
        metrics.HEALTH_PATH: Route(_healthy),
        metrics.METRICS_PATH: Route(metrics.handler),
    }


class HttpServer:
    """Serves ``routes`` (by path) on one host and port."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, *, serving: str, setting: str) -> str:
        """Listen; the base URL actually bound (port 0 picks a free one). ``serving`` says
        what for and ``setting`` which section's port to change when the port is taken."""
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot {serving} on {host}:{port}: {exc.strerror}; free the port or set "
                f"another {setting} port",
            ) from exc
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return f"http://{shown}:{bound_port}"

    async def stop(self) -> None:
        """Stop listening and end the connections still open."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or self._slots.locked():
            writer.close()  # too many at once: refusing costs less than queueing a stranger
            return
        self._connections.add(task)
        try:
            async with self._slots:
                await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stopping
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                request = await _read_request(connection, reader, writer, self._routes, remote)
        except TimeoutError:
            log.debug("http request from %s timed out", remote)
            return
        except h11.RemoteProtocolError as error:
            request = None
            response = Response.text(f"bad request: {error}", error.error_status_hint)
        else:
            if request is None:
                return  # the client closed before sending a request
            response = await self._respond(request)
        head_only = request is not None and request.method == "HEAD"
        # A client that does not read its answer holds a slot no longer than a slow sender.
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError, TimeoutError):
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                writer.write(_encode(connection, response, head_only=head_only))
                await writer.drain()

    async def _respond(self, request: Request) -> Response:
        route = self._routes.get(request.path)
        if route is None:
            return Response.text("not found", 404)
        if route.methods is not None and request.method not in route.methods:
            allowed = ", ".join(sorted(route.methods))
            return Response(405, b"method not allowed", headers={"Allow": allowed})
        try:
            return await route.handler(request)
        except Exception:
            log.exception("http handler for %s failed", request.path)
            return Response.text("internal error", 500)


async def _read_request(
    connection: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    routes: Mapping[str, Route],
    remote: str | None,
) -> Request | None:
    head: h11.Request | None = None
    limit = 0
    chunks: list[bytes] = []
    size = 0
    received = 0  # before the head was whole: h11 bounds only a head that arrives in pieces
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            if connection.they_are_waiting_for_100_continue:
                # curl and others ask before sending a body of more than 1 KB.
                continue_ = h11.InformationalResponse(status_code=100, headers=[])
                writer.write(connection.send(continue_) or b"")
            data = await reader.read(_READ_SIZE)
            received += len(data)
            if head is None and received > MAX_HEAD_BYTES:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            connection.receive_data(data)  # b"": the peer closed; h11 says what that means
            continue
        if isinstance(event, h11.ConnectionClosed):
            if head is None:
                return None
            raise h11.RemoteProtocolError("the connection closed inside the request body")
        if isinstance(event, h11.Request):
            head = event
            route = routes.get(_path(event.target))
            limit = route.max_body_bytes if route is not None else 0
            length = _content_length(event.headers)
            if length is not None and length > limit:
                return _request(head, None, remote)
            continue
        assert head is not None  # h11 yields the request line before any body event
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return _request(head, None, remote)  # not read further: the connection ends
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return _request(head, b"".join(chunks), remote)


def _path(target: bytes) -> str:
    return target.split(b"?", 1)[0].decode("ascii", "replace")


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared length; None for a chunked body, whose length a Content-Length beside it
    does not tell (RFC 9112 6.3: Transfer-Encoding wins, as h11 frames it)."""
    found = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            found = int(value)  # h11 has checked it is a number
    return found


def _request(head: h11.Request, body: bytes | None, remote: str | None) -> Request:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
    return Request(head.method.decode("ascii"), _path(head.target), headers, body, remote)


def _encode(connection: h11.Connection, response: Response, *, head_only: bool) -> bytes:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        ("Connection", "close"),
        *response.headers.items(),
    ]
    reason = _REASONS.get(response.status, b"")
    head = h11.Response(status_code=response.status, headers=headers, reason=reason)
    body = () if head_only else (h11.Data(data=response.body),)
    return b"".join(connection.send(event) or b"" for event in (head, *body, h11.EndOfMessage()))
