"""A scripted model server on 127.0.0.1 for the contract tests with the real agent CLIs.

It speaks the three APIs the CLIs use, streaming (SSE) where the CLI streams:

- OpenAI chat completions (``POST /v1/chat/completions``): aider, through litellm;
- OpenAI Responses (``POST /v1/responses``): the Codex CLI with a custom provider;
- Anthropic Messages (``POST /v1/messages``): Claude Code through ``ANTHROPIC_BASE_URL``.

Every request is logged (path and JSON body) so a test can assert what a CLI sent: that a fix
turn carried the plan, that a resumed turn carried the earlier conversation. What to answer
is up to the test's ``script``: given the API and the request, it returns a ``Reply`` (text,
and for codex and claude optionally one shell command to run first as a tool call).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    text: str
    command: str | None = None  # a shell command the agent runs before the text (tool call)


@dataclass
class Request:
    api: str  # "chat", "responses" or "messages"
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    def text(self) -> str:
        """Everything the request carries, as one string (for substring checks)."""
        return json.dumps(self.body, ensure_ascii=False)


Script = Callable[[Request], Reply]


@dataclass
class ModelServer:
    script: Script
    requests: list[Request] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def of(self, api: str) -> list[Request]:
        return [request for request in self.requests if request.api == api]

    async def _record(self, api: str, request: web.Request) -> Request:
        body = await request.json()
        seen = Request(api, request.path, body, dict(request.headers))
        self.requests.append(seen)
        return seen

    async def _other(self, request: web.Request) -> web.Response:
        self.requests.append(Request("other", request.path, {}, dict(request.headers)))
        return web.json_response({"error": {"message": f"no {request.path} here"}}, status=404)

    # -- OpenAI chat completions -----------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record("chat", request)
        reply = self.script(seen)
        usage = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "created": 0, "model": "test-model"}
        if not seen.body.get("stream"):
            message = {"role": "assistant", "content": reply.text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        stream = await _sse(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        delta = {"role": "assistant", "content": reply.text}
        await _send(stream, {**chunk, "choices": [{"index": 0, "delta": delta}]})
        done = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        await _send(stream, {**chunk, "choices": done, "usage": usage})
        await stream.write(b"data: [DONE]\n\n")
        return stream

    # -- OpenAI Responses (codex) ------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record("responses", request)
        reply = self.script(seen)
        stream = await _sse(request)
        response_id = f"resp_{uuid.uuid4().hex[:12]}"
        response = {"id": response_id, "object": "response", "status": "in_progress"}
        await _send(stream, {"type": "response.created", "response": response}, event=True)
        items: list[dict[str, Any]] = []
        if reply.command is not None and not _answered_call(seen.body):
            call = {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:8]}",
                "call_id": f"call_{uuid.uuid4().hex[:8]}",
                "name": "exec_command",  # Codex 0.171's shell tool
                "arguments": json.dumps({"cmd": reply.command}),
                "status": "completed",
            }
            items.append(call)
        else:
            message_id = f"msg_{uuid.uuid4().hex[:8]}"
            content = [{"type": "output_text", "text": reply.text, "annotations": []}]
            items.append(
                {
                    "type": "message",
                    "id": message_id,
                    "role": "assistant",
                    "status": "completed",
                    "content": content,
                }
            )
            added = {**items[0], "status": "in_progress", "content": []}
            await _send(
                stream,
                {"type": "response.output_item.added", "output_index": 0, "item": added},
                event=True,
            )
            delta = {
                "type": "response.output_text.delta",
                "item_id": message_id,
                "delta": reply.text,
            }
            await _send(stream, {**delta, "output_index": 0, "content_index": 0}, event=True)
        for index, item in enumerate(items):
            await _send(
                stream,
                {"type": "response.output_item.done", "output_index": index, "item": item},
                event=True,
            )
        completed = {
            "id": response_id,
            "object": "response",
            "status": "completed",
            "output": items,
            "usage": {
                "input_tokens": 1000,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 50,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 1050,
            },
        }
        await _send(stream, {"type": "response.completed", "response": completed}, event=True)
        return stream

    # -- Anthropic Messages (claude) ---------------------------------------------------------

    async def _count_tokens(self, request: web.Request) -> web.Response:
        await self._record("count_tokens", request)
        return web.json_response({"input_tokens": 1000})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record("messages", request)
        reply = self.script(seen)
        blocks: list[dict[str, Any]]
        if reply.command is not None and not _answered_tool(seen.body):
            tool = {"command": reply.command, "description": "run it"}
            blocks = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:12]}",
                    "name": "Bash",
                    "input": tool,
                }
            ]
            stop = "tool_use"
        else:
            blocks = [{"type": "text", "text": reply.text}]
            stop = "end_turn"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "model": seen.body.get("model", "claude-test"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 1000, "output_tokens": 1},
        }
        if not seen.body.get("stream"):
            done = {**message, "content": blocks, "stop_reason": stop}
            return web.json_response(done)
        stream = await _sse(request)
        await _send(stream, {"type": "message_start", "message": message}, event=True)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                start = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            await _send(
                stream,
                {"type": "content_block_start", "index": index, "content_block": start},
                event=True,
            )
            await _send(
                stream, {"type": "content_block_delta", "index": index, "delta": delta}, event=True
            )
            await _send(stream, {"type": "content_block_stop", "index": index}, event=True)
        await _send(
            stream,
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 50},
            },
            event=True,
        )
        await _send(stream, {"type": "message_stop"}, event=True)
        return stream


async def _sse(request: web.Request) -> web.StreamResponse:
    stream = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await stream.prepare(request)
    return stream


async def _send(stream: web.StreamResponse, data: dict[str, Any], *, event: bool = False) -> None:
    head = f"event: {data['type']}\n" if event else ""
    await stream.write(f"{head}data: {json.dumps(data)}\n\n".encode())


def _answered_call(body: dict[str, Any]) -> bool:
    """The Responses request already carries our tool call's output (the turn goes on)."""
    items = body.get("input")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call_output" for item in items[-3:]
    )


def _answered_tool(body: dict[str, Any]) -> bool:
    """The Messages request ends with the result of our tool call."""
    messages = body.get("messages") or []
    if not messages:
        return False
    content = messages[-1].get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )
