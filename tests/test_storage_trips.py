"""One trip to aiosqlite's thread per statement (storage/db.py, decision 0048): what that
must not change. Real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from storage import AuditLog, Database, RunStore, verify_chain


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "db.sqlite3")
    yield database
    await database.close()


async def test_a_statement_with_rows_sent_as_a_write_is_read_to_its_end(db: Database) -> None:
    """A write's cursor is not closed in a trip of its own; one that returns rows (a
    RETURNING, a SELECT) is read to its end, so the COMMIT after it still goes through."""
    await db.execute("INSERT INTO settings (key, value, updated_at) VALUES ('k', '1', 't')")
    async with db.transaction() as tx:
        written = await tx.execute(
            "UPDATE settings SET value = '2' WHERE key = 'k' RETURNING value"
        )
        await tx.execute("SELECT key FROM settings")
    assert written.rowcount == 1
    row = await db.fetchone("SELECT value FROM settings WHERE key = 'k'")
    assert row is not None and row[0] == "2"
    # And the next writer is not held up by anything left open.
    other = sqlite3.connect(db.path, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE settings SET value = '3' WHERE key = 'k'")
        other.execute("COMMIT")
    finally:
        other.close()


async def test_an_audit_append_and_a_checkpoint_are_one_statement_each(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each is one statement in SQLite's own transaction (no BEGIN, no COMMIT, no separate
    read of the chain head or of the run): one trip to aiosqlite's thread."""
    audit, runs = AuditLog(db), RunStore(db)
    run = await runs.start("g/app", 7, "dev", 1, "host-a")
    await audit.append("dev", "note.create", "g/app#7", {"body": "first"})  # the genesis case
    statements: list[str] = []
    connection = db._connection  # the seam: SQLite's own trace of what the connection ran
    assert connection is not None
    await connection.set_trace_callback(statements.append)
    trips = count_trips(monkeypatch)
    entry = await audit.append("dev", "note.create", "g/app#7", {"body": "hello"})
    await runs.checkpoint(run.id, "mr", {"iid": 12})
    assert len(trips) == 2, trips  # one per statement
    monkeypatch.undo()
    await connection.set_trace_callback(None)
    # SQLite reports a statement again as each of its trigger programs starts.
    ran = [sql.split(None, 2)[:2] for sql in dict.fromkeys(statements)]
    assert ran == [["INSERT", "INTO"], ["INSERT", "INTO"]], statements
    assert "audit" in statements[0] and "checkpoints" in statements[-1]
    assert (entry.id, verify_chain(db.path).ok) == (2, True)


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every trip to aiosqlite's thread (each call of its worker queue) from now on."""
    trips: list[int] = []
    execute = aiosqlite.Connection._execute

    async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(1)
        return await execute(connection, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips
