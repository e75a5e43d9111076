"""Leases on their own connection (docs/decisions/0029): no thread hop when the file is free,
a wait off the event loop when another writer holds it, and synchronous=NORMAL for leases only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import storage.db
from storage import Database, LeaseStore
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
