"""The observability listener of `crewline run` and `crewline worker`: ``/metrics`` (the
Prometheus exposition), ``/healthz`` (the process answers) and ``/readyz`` (the runtime
is started and its SQLite database answers, through the open connection and through a
fresh one to the file, so a lost volume shows)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from bot.settings import ObservabilitySettings
from forge import metrics
from forge.http_serve import HttpServer, Request, Response, Route, probe_routes
from storage import Storage

log = logging.getLogger(__name__)

METRICS_PATH = metrics.METRICS_PATH
HEALTH_PATH = metrics.HEALTH_PATH
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
        self._server: HttpServer | None = None

    def routes(self) -> dict[str, Route]:
        return {**probe_routes(), READY_PATH: Route(self._ready)}

    async def _ready(self, _request: Request) -> Response:
        problem = "the runtime is not started yet" if not self.started else None
        problem = problem or await database_problem(self.storage)
        if problem is not None:
            return Response.text(f"not ready: {problem}", 503)
        return Response.text("ready")

    async def start(self) -> str:
        """Listen and return the base URL actually bound (port 0 picks a free one)."""
        server = HttpServer(self.routes())
        url = await server.start(
            self.settings.host,
            self.settings.port,
            serving="serve /metrics",
            setting="[observability]",
        )
        self._server = server
        return url

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
