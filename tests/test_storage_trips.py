"""One trip to aiosqlite's thread per statement (storage/db.py, decision 0048): what that
must not change. Real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database


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
