"""One aiosqlite connection per process, with transactions we control (BEGIN IMMEDIATE).

Besides it, :meth:`Database.lease_call` runs on a plain ``sqlite3`` connection for the leases
alone, used from the event loop without a thread hop and with ``synchronous=NORMAL``
(:mod:`storage.leases` and docs/decisions/0029 and 0038 say why that is safe for leases and only
them).

The connection runs in autocommit mode (``isolation_level=None``): Python's sqlite3 never opens a
transaction behind our back. Every write goes through :meth:`Database.transaction`, which takes
the write lock up front with ``BEGIN IMMEDIATE`` so a read-then-write inside it can never be
interleaved with another writer, in this process or any other. An ``asyncio.Lock`` serialises
transactions (and reads) on the one connection: two coroutines must never share a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from storage.audit_hash import SQL_NAME as AUDIT_HASH_SQL
from storage.audit_hash import row_hash
from storage.errors import StorageBusyError, StorageError
from storage.schema import Migration, apply_migrations, load_migrations

log = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")

# BEGIN IMMEDIATE already waits busy_timeout_ms inside SQLite; these retries cover the rarer case
# where heavy multi-process contention outlasts it. Bounded so a stuck writer surfaces as an error.
_BUSY_RETRIES = 6
_BUSY_BACKOFF_SECONDS = 0.02
_BUSY_BACKOFF_CAP_SECONDS = 0.5
# A lease statement finds the file locked by another process: retried on the loop after these.
_LEASE_RETRY_FIRST_SECONDS = 0.0005
_LEASE_RETRY_CAP_SECONDS = 0.05


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Annotated[Path, Field(description="SQLite database file")] = Path("var/crewline.sqlite3")
    busy_timeout_ms: Annotated[
        int, Field(gt=0, description="How long a writer waits for another writer's lock, in ms")
    ] = 5000


@dataclass(frozen=True)
class Written:
    """What a write statement did."""

    rowcount: int
    lastrowid: int | None


class Transaction:
    """The statements of one open transaction. Only valid inside ``async with db.transaction()``."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, params: Params = ()) -> Written:
        return await _execute(self.connection, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await _fetchone(self.connection, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await _fetchall(self.connection, sql, params)


class Database:
    """A migrated SQLite database. Create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, connection: aiosqlite.Connection, path: Path, busy_timeout_ms: int) -> None:
        self._connection: aiosqlite.Connection | None = connection
        self._leases: sqlite3.Connection | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        migrations: Sequence[Migration] | None = None,
    ) -> Database:
        """Open (creating it and its parent directories if needed) and migrate the database.

        ``migrations`` defaults to the ones shipped in ``storage/migrations``; tests pass others.
        """
        if busy_timeout_ms <= 0:
            raise ValueError(f"busy_timeout_ms must be > 0, got {busy_timeout_ms}")
        path = Path(path)
        # Refused up front: aiosqlite's failed connect leaves its worker thread to finish late.
        if path.is_dir():
            raise _unusable(path, "it is a directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(path, exc) from exc
        connection.row_factory = sqlite3.Row
        db = cls(connection, path, busy_timeout_ms)
        try:
            try:
                await _control(connection, f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                await db.retry_busy(db._use_wal, "switching to WAL")
                await _control(connection, "PRAGMA synchronous = FULL")
                await _control(connection, "PRAGMA foreign_keys = ON")
                # The audit's append statement hashes its row inside SQLite (one statement,
                # one trip), with the function `crewline audit verify` checks it with.
                await connection.create_function(AUDIT_HASH_SQL, 9, row_hash, deterministic=True)
            except sqlite3.DatabaseError as exc:
                raise _unusable(path, exc) from exc
            known = list(migrations) if migrations is not None else load_migrations()
            async with db.transaction() as tx:
                await apply_migrations(tx, known, path)
        except BaseException:
            await db.close()
            raise
        return db

    async def _use_wal(self) -> None:
        row = await _fetchone(self._require_open(), "PRAGMA journal_mode = WAL")
        mode = str(row[0]).lower() if row else "unknown"
        if mode != "wal":
            raise StorageError(
                f"{self.path}: SQLite refused WAL mode (journal_mode is {mode!r}); put the "
                "database on a local filesystem that supports shared memory (not NFS)"
            )

    async def close(self) -> None:
        """Close the connections. Safe to call twice."""
        self._closed = True
        leases, self._leases = self._leases, None
        if leases is not None:
            leases.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    @property
    def closed(self) -> bool:
        return self._connection is None

    async def lease_call(
        self, work: Callable[[sqlite3.Connection], T], what: str, *, write: bool
    ) -> T:
        """Run ``work`` on the leases' connection, on the event loop, and return what it returns.

        With ``write``, ``work`` runs inside ``BEGIN IMMEDIATE`` … ``COMMIT``: it holds the
        write lock from its first statement, so a clock it reads is never before the release
        its grant follows. Without, ``work`` must be one statement (atomic on its own).
        When another writer holds the file's lock the call fails at once (``busy_timeout=0``)
        and is tried again after an ``asyncio.sleep``, so the loop never waits for another
        process; it gives up with :class:`StorageBusyError` after ``busy_timeout_ms``.
        """
        # No lock: an attempt runs to its end without yielding the loop.
        started: float | None = None
        delay = _LEASE_RETRY_FIRST_SECONDS
        while True:
            connection = self._lease_connection()
            try:
                return _lease_attempt(connection, work, write)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                now = time.monotonic()
                started = now if started is None else started
                waited = now - started
                if waited * 1000 >= self.busy_timeout_ms:
                    raise StorageBusyError(
                        f"{self.path}: still locked by another writer after {waited:.1f} s "
                        f"({what}); find the process holding a long write transaction, or "
                        "raise storage.busy_timeout_ms"
                    ) from exc
            # Jittered so that processes that collided do not collide again in step.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(_LEASE_RETRY_CAP_SECONDS, delay * 2)

    def _lease_connection(self) -> sqlite3.Connection:
        """Opened on first use: autocommit, WAL (set by :meth:`open`), ``synchronous=NORMAL``
        and ``busy_timeout=0``, so a statement that would wait for a writer fails at once.
        Rows are plain tuples (``sqlite3.Row`` costs a lookup per column)."""
        if self._closed:
            raise StorageError(f"{self.path}: the database is closed; open it again first")
        if self._leases is None:
            try:
                connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
                connection.execute("PRAGMA busy_timeout = 0")
                connection.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise _unusable(self.path, exc) from exc
            self._leases = connection
        return self._leases

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` if the body raises (then re-raise)."""
        async with self._lock:
            connection = await self._open_clean()
            await self.retry_busy(lambda: _control(connection, "BEGIN IMMEDIATE"), "BEGIN")
            try:
                yield Transaction(connection)
            except BaseException:
                await self._rollback(connection)
                raise
            try:
                await _control(connection, "COMMIT")
            except BaseException:
                await self._rollback(connection)
                raise

    async def _open_clean(self) -> aiosqlite.Connection:
        connection = self._require_open()
        if connection.in_transaction:
            # Only possible if an earlier ROLLBACK itself failed; never build on its leftovers.
            log.warning("storage %s: rolling back a transaction left open", self.path)
            await _control(connection, "ROLLBACK")
        return connection

    async def _rollback(self, connection: aiosqlite.Connection) -> None:
        try:
            if connection.in_transaction:
                await _control(connection, "ROLLBACK")
        except sqlite3.Error:
            log.exception("storage %s: ROLLBACK failed", self.path)

    async def retry_busy(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        for attempt in range(_BUSY_RETRIES + 1):
            try:
                return await operation()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if attempt == _BUSY_RETRIES:
                    raise StorageBusyError(
                        f"{self.path}: still locked by another writer after {attempt + 1} tries "
                        f"of {self.busy_timeout_ms} ms each ({what}); find the process holding a "
                        "long write transaction, or raise storage.busy_timeout_ms"
                    ) from exc
                delay = min(_BUSY_BACKOFF_CAP_SECONDS, _BUSY_BACKOFF_SECONDS * 2**attempt)
                log.warning(
                    "storage %s: busy during %s (try %d), retrying in %.3fs",
                    self.path,
                    what,
                    attempt + 1,
                    delay,
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a read outside any transaction (it sees the latest committed state)."""
        async with self._lock:
            return await _fetchone(self._require_open(), sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return await _fetchall(self._require_open(), sql, params)

    async def execute(self, sql: str, params: Params = ()) -> Written:
        """Run one write statement in a transaction of its own: SQLite's implicit one, which
        takes the write lock before the statement reads anything, as ``BEGIN IMMEDIATE``
        would, and commits (durably) when it ends. One trip to aiosqlite's thread instead
        of three."""
        return await self._alone(lambda connection: _execute(connection, sql, params), sql)

    async def returning(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run one write statement with a ``RETURNING`` clause, as :meth:`execute` does, and
        return its rows."""
        return await self._alone(lambda connection: _fetchall(connection, sql, params), sql)

    async def _alone(
        self, statement: Callable[[aiosqlite.Connection], Awaitable[T]], sql: str
    ) -> T:
        # The lock: on the one connection, a statement sent while another coroutine's
        # transaction is open would become part of it.
        async with self._lock:
            connection = await self._open_clean()
            # A statement that meets another writer's lock did nothing: trying it again is safe.
            return await self.retry_busy(lambda: statement(connection), sql.split(None, 1)[0])

    def _require_open(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StorageError(f"{self.path}: the database is closed; open it again first")
        return self._connection


def _lease_attempt(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], write: bool
) -> T:
    if not write:
        return work(connection)
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


def _unusable(path: Path, exc: Exception | str) -> StorageError:
    return StorageError(
        f"{path}: cannot use it as an SQLite database ({exc}); point storage.path at a new "
        "file in a writable directory, or at a crewline database"
    )


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is SQLite's "another writer holds the lock" (SQLITE_BUSY)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc)


# Every statement is one trip to aiosqlite's thread and back (a queue put, a thread wake, a
# loop wake): a cursor opened, fetched from and closed was three, and they were most of the
# storage's CPU. A write statement that returns no rows leaves nothing open once executed,
# so its cursor is not closed in a trip of its own (one that does is read to its end);
# reads, RETURNING included, come back whole from ``execute_fetchall``.


async def _execute(connection: aiosqlite.Connection, sql: str, params: Params = ()) -> Written:
    cursor = await connection.execute(sql, params)
    # None for a statement without result columns (aiosqlite's stub says always a tuple).
    description: tuple[Any, ...] | None = cursor.description
    if description is not None:
        # It has rows to give (a RETURNING, a SELECT, SQLite's own check inside an ALTER
        # TABLE): read to its end, one more trip, or it stays active and the COMMIT fails.
        await cursor.fetchall()
    return Written(rowcount=cursor.rowcount, lastrowid=cursor.lastrowid)


async def _control(connection: aiosqlite.Connection, sql: str) -> None:
    """BEGIN, COMMIT, ROLLBACK or a PRAGMA: run to its end in one trip, rows dropped."""
    await connection.execute_fetchall(sql)


async def _fetchone(
    connection: aiosqlite.Connection, sql: str, params: Params = ()
) -> sqlite3.Row | None:
    rows = await connection.execute_fetchall(sql, params)
    return next(iter(rows), None)


async def _fetchall(
    connection: aiosqlite.Connection, sql: str, params: Params = ()
) -> list[sqlite3.Row]:
    return list(await connection.execute_fetchall(sql, params))
