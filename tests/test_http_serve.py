"""crewline's own HTTP listener (forge/http_serve.py), spoken to over real sockets with raw
bytes: routing, the bounds on what a stranger can send, and what it answers when the
request is not HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from forge import http_serve
from forge.http_serve import HttpServer, Request, Response, Route

SEEN: list[Request] = []


async def echo(request: Request) -> Response:
    SEEN.append(request)
    size = "none" if request.body is None else str(len(request.body))
    return Response.text(f"{request.method} {request.path} body={size}")


async def broken(_request: Request) -> Response:
    raise RuntimeError("a bug in a handler")


@pytest.fixture
async def base() -> AsyncIterator[tuple[str, int]]:
    SEEN.clear()
    server = HttpServer(
        {
            "/hook": Route(echo, methods=None, max_body_bytes=10),
            "/get": Route(echo),
            "/broken": Route(broken),
        }
    )
    url = await server.start("127.0.0.1", 0, serving="test", setting="[test]")
    host, port = url.removeprefix("http://").split(":")
    yield host, int(port)
    await server.stop()


async def exchange(address: tuple[str, int], raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def closed_without_answer(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection without a byte (a reset too: it did not read what
    was sent)."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_routes_answer_with_their_status_and_close_the_connection(
    base: tuple[str, int],
) -> None:
    answer = await exchange(base, b"GET /get?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status(answer) == 200 and answer.endswith(b"GET /get body=0")
    assert b"connection: close" in answer.lower()
    assert status(await exchange(base, b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")) == 404
    refused = await exchange(base, b"POST /get HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert status(refused) == 405 and b"allow: GET" in refused.replace(b"Allow", b"allow")
    head = await exchange(base, b"HEAD /hook HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status(head) == 200 and head.endswith(b"\r\n\r\n")  # a head, no body
    assert status(await exchange(base, b"GET /broken HTTP/1.1\r\nHost: a\r\n\r\n")) == 500


async def test_a_body_reaches_the_handler_whole_or_as_too_large(base: tuple[str, int]) -> None:
    sized = b"POST /hook HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    assert (await exchange(base, sized)).endswith(b"body=5")
    chunked = (
        b"POST /hook HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert (await exchange(base, chunked)).endswith(b"body=3")
    # Over the route's 10 bytes: declared, or found while a chunked body streams in.
    declared = b"POST /hook HTTP/1.1\r\nHost: a\r\nContent-Length: 999999\r\n\r\n"
    assert (await exchange(base, declared)).endswith(b"body=none")
    streamed = b"POST /hook HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    streamed += b"8\r\n12345678\r\n8\r\n12345678\r\n"  # and never ends
    assert (await exchange(base, streamed)).endswith(b"body=none")


async def test_a_client_that_expects_100_continue_is_told_to_send_its_body(
    base: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*base)
    writer.write(
        b"POST /hook HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(b"body")
    answer = await asyncio.wait_for(reader.read(), 5)
    assert status(answer) == 200 and answer.endswith(b"body=4")
    writer.close()


async def test_what_is_not_http_is_answered_4xx(base: tuple[str, int]) -> None:
    assert status(await exchange(base, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    huge_head = b"GET /get HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert status(await exchange(base, huge_head)) == 431
    assert SEEN == []  # no handler saw any of it


async def test_a_slow_sender_is_cut_off(
    base: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_serve, "REQUEST_TIMEOUT_SECONDS", 0.3)
    reader, writer = await asyncio.open_connection(*base)
    writer.write(b"POST /hook HTTP/1.1\r\nHost: a\r\n")  # and nothing more
    await writer.drain()
    assert await closed_without_answer(reader)
    writer.close()
    assert SEEN == []


async def test_connections_beyond_the_limit_are_closed_at_once(
    base: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is read when the server is built: rebuild it with a small one.
    monkeypatch.setattr(http_serve, "MAX_CONNECTIONS", 2)
    server = HttpServer({"/get": Route(echo)})
    url = await server.start("127.0.0.1", 0, serving="test", setting="[test]")
    host, port = url.removeprefix("http://").split(":")
    held = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    for _, writer in held:
        writer.write(b"GET /get HTTP/1.1\r\n")  # an unfinished head holds a slot
        await writer.drain()
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /get HTTP/1.1\r\nHost: a\r\n\r\n")
    assert await closed_without_answer(reader)
    writer.close()
    await server.stop()  # ends the held connections too
    for held_reader, held_writer in held:
        assert await closed_without_answer(held_reader)
        held_writer.close()


async def test_a_taken_port_says_which_setting_to_change(base: tuple[str, int]) -> None:
    with pytest.raises(
        OSError, match=r"cannot test on 127\.0\.0\.1:\d+: .*set another \[test\] port"
    ):
        await HttpServer({}).start(base[0], base[1], serving="test", setting="[test]")
