"""The simulator's state: one SQLite file, one connection, used on the simulator's own loop.

Statements run inline on the event loop: the simulator's tables are small and each statement
takes microseconds, where a hop to a connection thread and back (aiosqlite) cost about a
quarter of a millisecond of CPU per statement, thousands of times per end-to-end test.
``execute`` keeps aiosqlite's shape (awaited, or used with ``async with``; ``fetchone`` and
``fetchall`` awaited) so the route modules read as they did.

Writes are serialised by an asyncio lock and run inside ``BEGIN IMMEDIATE`` so a transaction
never upgrades from a read lock (SQLITE_BUSY); a write block that awaits something else (a
git command, an event) still keeps other writers out.
Each route module owns its tables and hands its DDL to :meth:`SimStore.ensure_schema`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any


class Cursor:
    """A statement already run: awaitable (to itself) and an async context manager, as
    aiosqlite's ``execute`` result is, so callers write ``await conn.execute(...)`` or
    ``async with conn.execute(...) as cur``."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[None, None, Cursor]:
        yield from ()
        return self

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._cursor.close()

    async def fetchone(self) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._cursor.fetchone()
        return row

    async def fetchall(self) -> list[sqlite3.Row]:
        return list(self._cursor.fetchall())

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class Connection:
    """The one connection, in autocommit mode (transactions are explicit), rows as
    :class:`sqlite3.Row`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return Cursor(self._conn.execute(sql, params))

    def close(self) -> None:
        self._conn.close()


class SimStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SimStore:
        raw = sqlite3.connect(path, isolation_level=None)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL survives the simulator's process dying (only a power cut could
        # lose the last commits) and skips an fsync per write, which the suite's hundreds of
        # simulators paid in system time. crewline's own database stays FULL (storage/db.py).
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA busy_timeout=5000")
        raw.execute("PRAGMA foreign_keys=ON")
        return cls(Connection(raw))

    async def close(self) -> None:
        self._conn.close()

    async def ensure_schema(self, ddl: str) -> None:
        async with self.write() as conn:
            for statement in _split_statements(ddl):
                await conn.execute(statement)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchone()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")


def _split_statements(ddl: str) -> Iterable[str]:
    return (part.strip() for part in ddl.split(";") if part.strip())
