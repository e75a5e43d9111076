"""Leases on their own connection (docs/decisions/0029): no thread hop when the file is free,
a wait off the event loop when another writer holds it, and synchronous=NORMAL for leases only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import storage.db
from storage import Database, Lease, LeaseStore
from storage.schema import load_migrations
from tests.support.storage import raw_connection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "leases.sqlite3")
    yield database
    await database.close()


async def test_uncontended_lease_operations_never_leave_the_event_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the aiosqlite connection (a thread of its own) nor a pool thread is used."""
    leases = LeaseStore(db)

    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a lease operation hopped to a thread with the file free")

    monkeypatch.setattr(storage.db.asyncio, "to_thread", no_thread)
    monkeypatch.setattr(db, "_connection", _NoThreadedConnection())
    lease = await leases.acquire("issue:g/p:1", "w1", 30)
    assert lease is not None
    renewed = await leases.renew(lease, 60)
    assert renewed is not None and renewed.token == lease.token
    assert await leases.get("issue:g/p:1") == renewed
    assert await leases.held_by("w1") == [renewed]
    assert await leases.release(renewed) is True
    assert await leases.get("issue:g/p:1") is None


class _NoThreadedConnection:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a lease operation used the aiosqlite connection ({name})")


async def test_a_lease_waits_for_another_writer_without_blocking_the_loop(
    db: Database,
) -> None:
    """Another process holds the write lock: the acquire waits in a thread, the loop keeps
    running other work meanwhile, and the grant comes once the writer commits."""
    leases = LeaseStore(db)
    other = raw_connection(db.path)
    try:
        other.execute("BEGIN IMMEDIATE")
        acquiring = asyncio.create_task(leases.acquire("k", "w1", 30))
        ticks = 0
        for _ in range(5):  # the loop is free: these sleeps run while the acquire waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5 and not acquiring.done()
        other.execute("COMMIT")
        lease = await asyncio.wait_for(acquiring, 10)
    finally:
        other.close()
    assert lease is not None and lease.token == 1


async def test_leases_commit_with_synchronous_normal_and_everything_else_with_full(
    db: Database,
) -> None:
    leases = LeaseStore(db)
    await leases.acquire("k", "w1", 30)
    assert (await db.fetchone("PRAGMA synchronous"))[0] == 2  # type: ignore[index]  # FULL
    lease_connection = db._lease_connection()
    assert lease_connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert lease_connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_closed_database_refuses_lease_operations(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "closed.sqlite3")
    leases = LeaseStore(db)
    await leases.acquire("k", "w1", 30)
    await db.close()
    with pytest.raises(storage.StorageError, match="closed"):
        await leases.acquire("k", "w1", 30)


async def test_a_lease_gives_up_with_a_clear_error_when_another_writer_never_lets_go(
    tmp_path: Path,
) -> None:
    """Retried on the loop (asyncio.sleep) until busy_timeout_ms, then StorageBusyError; the
    loop ran other work the whole time."""
    db = await Database.open(tmp_path / "stuck.sqlite3", busy_timeout_ms=300)
    leases = LeaseStore(db)
    other = raw_connection(db.path)
    try:
        other.execute("BEGIN IMMEDIATE")
        acquiring = asyncio.create_task(leases.acquire("k", "w1", 30))
        ticks = 0
        while not acquiring.done():
            await asyncio.sleep(0.01)
            ticks += 1
        with pytest.raises(storage.StorageBusyError, match="acquiring a lease") as caught:
            acquiring.result()
        assert "storage.busy_timeout_ms" in str(caught.value)
        assert ticks >= 3  # other work ran while it waited (a blocked loop ticks once)
        other.execute("ROLLBACK")
        lease = await leases.acquire("k", "w1", 30)  # nothing was half-written
        assert lease is not None and lease.token == 1
    finally:
        other.close()
        await db.close()


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_lease_write_puts_one_page_in_the_wal(db: Database) -> None:
    """The leases table is one b-tree keyed by the key (migration 004): a grant, a renewal and
    a release each write one page, not one per index."""
    leases = LeaseStore(db)
    for number in range(50):  # a table of several keys, like a host's after a while
        await leases.acquire(f"issue:g/p:{number}", "w0", 30)
    page = db._lease_connection().execute("PRAGMA page_size").fetchone()[0]
    db._lease_connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _wal_bytes(db.path) == 0
    lease = await leases.acquire("issue:g/p:7", "w1", 30, retake=False)
    assert lease is None  # held by w0: refused, and nothing written
    assert _wal_bytes(db.path) == 0
    frame = 24 + page
    lease = await leases.acquire("issue:g/p:new", "w1", 30)
    assert lease is not None
    assert _wal_bytes(db.path) == 32 + frame  # the WAL header and one frame
    renewed = await leases.renew(lease, 60)
    assert renewed is not None and _wal_bytes(db.path) == 32 + 2 * frame
    assert await leases.release(renewed) is True
    assert _wal_bytes(db.path) == 32 + 3 * frame


async def test_migration_004_keeps_every_lease_and_its_token(tmp_path: Path) -> None:
    """A database written before 004 keeps its grants: a held key stays held, and a released
    key's next grant continues its token (a token is never reused)."""
    path = tmp_path / "old.sqlite3"
    shipped = load_migrations()
    old = await Database.open(path, migrations=shipped[:3])
    await old.close()
    with raw_connection(path) as raw:
        raw.execute("INSERT INTO leases VALUES ('held', 4, 'w1', 9e9), ('free', 7, NULL, NULL)")
    db = await Database.open(path)
    try:
        leases = LeaseStore(db)
        assert await leases.get("held") == Lease("held", "w1", 4, 9e9)
        assert await leases.acquire("held", "w2", 30) is None
        again = await leases.acquire("free", "w2", 30)
        assert again is not None and again.token == 8
    finally:
        await db.close()
    with raw_connection(path) as raw:
        sql = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'leases'").fetchone()[0]
        indexes = raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leases'"
        ).fetchall()
    assert "WITHOUT ROWID" in sql and indexes == []
