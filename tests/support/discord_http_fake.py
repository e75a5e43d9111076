"""A fake of Discord's REST API on loopback, for what crewline's start-up and command sync
call: log in (``/users/@me``, ``/oauth2/applications/@me``) and put guild commands; and a
gateway that is down (its websocket handshake answers 503). discord.py's real HTTP client
talks to it: ``Route.BASE`` and the default gateway URL point here, so nothing leaves
the machine."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import discord
import yarl
from aiohttp import web

GOOD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
APP_ID = 424242


class FakeDiscordApi:
    def __init__(self) -> None:
        self.commands: dict[int, list[dict[str, Any]]] = {}  # guild id -> commands
        self.gateway_calls = 0
        self.url = ""
        self.gateway_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {GOOD_TOKEN}"

    async def me(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(_user())

    async def application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "crewline",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": _user(),
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def put_guild_commands(self, request: web.Request) -> web.Response:
        guild = int(request.match_info["guild"])
        payload = await request.json()
        self.commands[guild] = [
            {
                **command,
                "id": str(1000 + n),
                "application_id": str(APP_ID),
                "guild_id": str(guild),
                "version": "1",
            }
            for n, command in enumerate(payload)
        ]
        return _json(self.commands[guild])

    async def gateway(self, request: web.Request) -> web.Response:
        self.gateway_calls += 1  # the gateway is down: the websocket handshake fails
        return _json({"message": "503: Service Unavailable", "code": 0}, status=503)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self.me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self.application)
        app.router.add_put(
            "/api/v10/applications/{app}/guilds/{guild}/commands", self.put_guild_commands
        )
        app.router.add_get("/gateway", self.gateway)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        assert self._ready.wait(10), "the fake Discord API did not start"
        return thread


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only for exactly this content type, as Discord sends it.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _user() -> dict[str, Any]:
    return {
        "id": str(APP_ID),
        "username": "crewline",
        "discriminator": "0",
        "avatar": None,
        "bot": True,
    }


@contextmanager
def discord_api() -> Iterator[FakeDiscordApi]:
    """The fake API, with discord.py's HTTP routes and gateway pointed at it meanwhile."""
    api = FakeDiscordApi()
    thread = api.start()
    socket = discord.gateway.DiscordWebSocket
    original, original_gateway = discord.http.Route.BASE, socket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api.url
    socket.DEFAULT_GATEWAY = yarl.URL(api.gateway_url)
    try:
        yield api
    finally:
        discord.http.Route.BASE = original
        socket.DEFAULT_GATEWAY = original_gateway
        assert api._loop is not None
        api._loop.call_soon_threadsafe(api._loop.stop)
        thread.join(10)
