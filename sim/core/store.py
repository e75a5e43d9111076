"""The simulator's state: one SQLite file, one aiosqlite connection.

Reads run concurrently; writes are serialised by an asyncio lock and run inside
``BEGIN IMMEDIATE`` so a transaction never upgrades from a read lock (SQLITE_BUSY).
Each route module owns its tables and hands its DDL to :meth:`SimStore.ensure_schema`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite


class SimStore:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SimStore:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL survives the simulator's process dying (only a power cut could
        # lose the last commits) and skips an fsync per write, which the suite's hundreds of
        # simulators paid in system time. crewline's own database stays FULL (storage/db.py).
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA foreign_keys=ON")
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def ensure_schema(self, ddl: str) -> None:
        async with self.write() as conn:
            for statement in _split_statements(ddl):
                await conn.execute(statement)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
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
