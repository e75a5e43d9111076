"""The observability listener of `crewline run` and `crewline worker`: ``/metrics`` (the
Prometheus exposition), ``/healthz`` (the process answers) and ``/readyz`` (the runtime
is started and its SQLite database answers, through the open connection and through a
fresh one to the file, so a lost volume shows)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from aiohttp import web

from bot.settings import ObservabilitySettings
from forge import metrics
from forge.listen import listen
from storage import Storage

log = logging.getLogger(__name__)

METRICS_PATH = metrics.METRICS_PATH
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


def _open_file(path: Path) -> None:
    # mode=rw: never create a fresh empty database where the real one went missing.
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=1.0)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        connection.close()


async def database_problem(storage: Storage) -> str | None:
    """Why the database is not usable now, or None."""
    if storage.db.closed:
        return "the database is closed"
    try:
        await asyncio.to_thread(_open_file, storage.db.path)
        await storage.db.fetchone("SELECT 1")
    except Exception as error:  # any failure means not ready; the reason is shown
        return f"the database {storage.db.path} is unreachable: {error}"
    return None


class Observer:
    """Serves the three paths; :attr:`started` is set once the engine and scheduler run."""

    def __init__(self, settings: ObservabilitySettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.started = False
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(METRICS_PATH, metrics.handler)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(READY_PATH, self._ready)
        return app

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _ready(self, _request: web.Request) -> web.Response:
        problem = "the runtime is not started yet" if not self.started else None
        problem = problem or await database_problem(self.storage)
        if problem is not None:
            return web.Response(status=503, text=f"not ready: {problem}")
        return web.Response(text="ready")

    async def start(self) -> str:
        """Listen and return the base URL actually bound (port 0 picks a free one)."""
        runner, url = await listen(
            self.app(),
            self.settings.host,
            self.settings.port,
            serving="serve /metrics",
            setting="[observability]",
        )
        self._runner = runner
        return url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
