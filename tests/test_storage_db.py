"""Database: pragmas, migrations, newer-schema refusal, BEGIN IMMEDIATE under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import storage.db
from storage import (
    Database,
    Migration,
    MigrationError,
    SchemaTooNewError,
    Storage,
    StorageBusyError,
    StorageError,
    StorageSettings,
    load_migrations,
)
from storage.schema import split_statements
from tests.support.storage import raw_connection

SHIPPED_TABLES = {"leases", "runs", "checkpoints", "usage", "audit", "learnings", "settings"}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "db.sqlite3")
    yield database
    await database.close()


def tables(path: Path) -> set[str]:
    with raw_connection(path) as raw:
        rows = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row["name"] for row in rows}


def user_version(path: Path) -> int:
    with raw_connection(path) as raw:
        return int(raw.execute("PRAGMA user_version").fetchone()[0])


CREATE_NOTES = Migration(1, "notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);")


# --- pragmas ------------------------------------------------------------------------------------


async def test_pragmas_are_really_set_on_the_connection(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.sqlite3", busy_timeout_ms=1234)
    try:
        readings = {}
        for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
            row = await db.fetchone(f"PRAGMA {pragma}")
            assert row is not None
            readings[pragma] = row[0]
    finally:
        await db.close()
    assert readings == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 1234,
    }
    # WAL is a property of the file: any later connection finds it.
    with raw_connection(tmp_path / "p.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_storage_open_takes_its_busy_timeout_from_the_settings(tmp_path: Path) -> None:
    settings = StorageSettings(path=tmp_path / "nested" / "s.sqlite3", busy_timeout_ms=777)
    bundle = await Storage.open(settings)
    try:
        row = await bundle.db.fetchone("PRAGMA busy_timeout")
        assert row is not None and row[0] == 777
        assert bundle.db.path == settings.path and settings.path.is_file()
    finally:
        await bundle.close()


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await db.execute(
            "INSERT INTO checkpoints (run_id, step, result_json, recorded_at) VALUES (?, ?, ?, ?)",
            (999, "plan", "{}", "2024-01-01T00:00:00.000000+00:00"),
        )
    assert await db.fetchall("SELECT * FROM checkpoints") == []


@pytest.mark.parametrize("busy_ms", [0, -5])
async def test_a_non_positive_busy_timeout_is_refused(tmp_path: Path, busy_ms: int) -> None:
    with pytest.raises(ValueError, match="busy_timeout_ms must be > 0"):
        await Database.open(tmp_path / "t.sqlite3", busy_timeout_ms=busy_ms)


async def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is a text file, not an SQLite database " * 4)
    with pytest.raises(StorageError, match=r"junk\.sqlite3: cannot use it as an SQLite database"):
        await Database.open(junk)
    with pytest.raises(StorageError, match="it is a directory"):
        await Database.open(tmp_path)
    with pytest.raises(StorageError, match="cannot use it as an SQLite database"):
        await Database.open(junk / "under-a-file.sqlite3")


async def test_a_closed_database_says_so(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "c.sqlite3")
    await db.close()
    await db.close()  # twice is fine
    assert db.closed
    with pytest.raises(StorageError, match="the database is closed"):
        await db.fetchone("SELECT 1")
    with pytest.raises(StorageError, match="the database is closed"):
        await db.execute("DELETE FROM settings")


def test_a_committed_row_survives_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite3"
    script = (
        "import asyncio, os, signal, sys\n"
        "from pathlib import Path\n"
        "from storage import Storage\n"
        "async def main():\n"
        "    s = await Storage.open(Path(sys.argv[1]))\n"
        "    await s.settings.set('paused', 'yes')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"  # no close, no checkpoint
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == -9, result.stderr
    with raw_connection(path) as raw:
        assert raw.execute("SELECT value FROM settings WHERE key = 'paused'").fetchone()[0] == "yes"


# --- migrations ---------------------------------------------------------------------------------


async def test_a_fresh_database_gets_every_shipped_migration(db: Database) -> None:
    shipped = load_migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert await db.schema_version() == len(shipped)
    assert tables(db.path) >= SHIPPED_TABLES


async def test_migrations_apply_once_and_later_ones_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    seed = Migration(2, "seed", "INSERT INTO notes (text) VALUES ('first');")
    for _ in range(2):  # the second start must not apply anything again
        db = await Database.open(path, migrations=[CREATE_NOTES, seed])
        await db.close()
    assert user_version(path) == 2
    more = Migration(
        3,
        "more",
        "ALTER TABLE notes ADD COLUMN tag TEXT; INSERT INTO notes (text, tag) VALUES ('x', 't');",
    )
    db = await Database.open(path, migrations=[CREATE_NOTES, seed, more])
    try:
        rows = await db.fetchall("SELECT text, tag FROM notes ORDER BY id")
    finally:
        await db.close()
    assert [tuple(row) for row in rows] == [("first", None), ("x", "t")]
    assert user_version(path) == 3


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    await (await Database.open(path)).close()
    newest = len(load_migrations())
    with raw_connection(path) as raw:
        raw.execute(f"PRAGMA user_version = {newest + 1}")
    with pytest.raises(SchemaTooNewError) as caught:
        await Database.open(path)
    message = str(caught.value)
    assert f"schema version {newest + 1}" in message and f"versions up to {newest}" in message
    assert "newer crewline" in message and "Upgrade crewline" in message
    assert user_version(path) == newest + 1  # left alone
    # The refused open closed its connection: nothing holds the file.
    with raw_connection(path) as raw:
        raw.execute("PRAGMA busy_timeout = 0")
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")


async def test_a_failed_migration_leaves_nothing_half_applied(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    broken = Migration(
        2,
        "broken",
        "CREATE TABLE tags (name TEXT); INSERT INTO notes (text) VALUES ('kept?'); "
        "INSERT INTO no_such_table VALUES (1);",
    )
    with pytest.raises(MigrationError) as caught:
        await Database.open(path, migrations=[CREATE_NOTES, broken])
    assert "migration 002_broken failed" in str(caught.value)
    assert "no such table: no_such_table" in str(caught.value)
    assert "stays at version 0" in str(caught.value)
    # 001 ran in the same transaction as 002: it is gone too.
    assert user_version(path) == 0
    assert tables(path) == set()

    db = await Database.open(path, migrations=[CREATE_NOTES])
    await db.execute("INSERT INTO notes (text) VALUES ('mine')")
    await db.close()
    with pytest.raises(MigrationError, match="stays at version 1"):
        await Database.open(path, migrations=[CREATE_NOTES, broken])
    assert user_version(path) == 1
    assert tables(path) == {"notes"}
    with raw_connection(path) as raw:
        assert [row[0] for row in raw.execute("SELECT text FROM notes")] == ["mine"]


async def test_a_migration_that_controls_the_transaction_is_refused_before_running(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tx.sqlite3"
    sneaky = Migration(2, "sneaky", "CREATE TABLE a (x); COMMIT; CREATE TABLE b (y);")
    with pytest.raises(MigrationError, match=r"002_sneaky: .*controls the transaction itself"):
        await Database.open(path, migrations=[CREATE_NOTES, sneaky])
    assert user_version(path) == 0 and tables(path) == set()


async def test_several_connections_migrating_a_fresh_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "together.sqlite3"
    opened = await asyncio.gather(*[Database.open(path) for _ in range(4)])
    try:
        versions = [await db.schema_version() for db in opened]
    finally:
        for db in opened:
            await db.close()
    assert versions == [len(load_migrations())] * 4


def test_load_migrations_orders_by_version_and_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "002_second.sql").write_text("CREATE TABLE b (x);", encoding="utf-8")
    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (x);", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a migration", encoding="utf-8")
    assert load_migrations(tmp_path) == [
        Migration(1, "first", "CREATE TABLE a (x);"),
        Migration(2, "second", "CREATE TABLE b (x);"),
    ]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["1_first.sql"], "'1_first.sql' is misnamed"),
        (["001_First.sql"], "misnamed"),
        (["001_a.sql", "003_c.sql"], "003_c is out of sequence: expected version 002"),
        (["001_a.sql", "001_b.sql"], "out of sequence"),
        (["002_b.sql"], "expected version 001"),
    ],
)
def test_load_migrations_refuses_bad_names_gaps_and_repeats(
    tmp_path: Path, names: list[str], message: str
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_split_statements_keeps_trigger_bodies_strings_and_comments_whole() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    /* block; comment */
    CREATE TRIGGER t_guard BEFORE DELETE ON t
    BEGIN
        SELECT RAISE(ABORT, 'no; never');
    END;
    ;
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("CREATE TABLE t (x TEXT DEFAULT 'a;b');")
    assert "CREATE TRIGGER t_guard" in statements[1] and statements[1].endswith("END;")
    assert "SELECT RAISE(ABORT, 'no; never');" in statements[1]


def test_split_statements_refuses_an_unterminated_statement() -> None:
    with pytest.raises(MigrationError, match="unterminated SQL statement"):
        split_statements("CREATE TABLE a (x); CREATE TABLE b (y)")


# --- transactions -------------------------------------------------------------------------------


async def test_a_transaction_takes_the_write_lock_at_begin(db: Database) -> None:
    """BEGIN IMMEDIATE: even before its first write, no other connection can start writing."""
    with raw_connection(db.path) as other:
        other.execute("PRAGMA busy_timeout = 0")
        async with db.transaction() as tx:
            await tx.fetchone("SELECT 1")  # a read only
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after COMMIT
        other.execute("ROLLBACK")


async def test_a_failing_transaction_rolls_back_and_the_database_stays_usable(
    db: Database,
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings VALUES ('k', 'v', 'now')")
            raise RuntimeError("boom")
    assert await db.fetchall("SELECT * FROM settings") == []
    written = await db.execute("INSERT INTO settings VALUES ('k', 'v2', 'now')")
    assert written.rowcount == 1


async def _increment(db: Database, times: int) -> None:
    for _ in range(times):
        async with db.transaction() as tx:
            row = await tx.fetchone("SELECT value FROM settings WHERE key = 'n'")
            assert row is not None
            # Let the other connection run between our read and our write.
            await asyncio.sleep(0.001)
            await tx.execute("UPDATE settings SET value = ? WHERE key = 'n'", (int(row[0]) + 1,))


async def test_two_connections_read_modify_write_concurrently_without_busy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "counter.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        await first.execute("INSERT INTO settings VALUES ('n', '0', 'now')")
        await asyncio.gather(_increment(first, 40), _increment(second, 40))
        row = await second.fetchone("SELECT value FROM settings WHERE key = 'n'")
    finally:
        await first.close()
        await second.close()
    assert row is not None and int(row[0]) == 80  # no update lost, no SQLITE_BUSY raised


def test_control_deferred_transactions_do_hit_busy_in_the_same_interleaving(
    tmp_path: Path,
) -> None:
    """Why BEGIN IMMEDIATE: with a plain BEGIN the same read-then-write fails in WAL mode."""
    path = tmp_path / "deferred.sqlite3"
    with raw_connection(path) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE counter (n INTEGER)")
        setup.execute("INSERT INTO counter VALUES (0)")
    both_read = threading.Barrier(2)
    errors: list[BaseException] = []

    def increment() -> None:
        with raw_connection(path) as raw:
            raw.execute("PRAGMA busy_timeout = 2000")
            try:
                raw.execute("BEGIN")
                (n,) = raw.execute("SELECT n FROM counter").fetchone()
                both_read.wait(10)
                raw.execute("UPDATE counter SET n = ?", (n + 1,))
                raw.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=increment) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1 and "database is locked" in str(errors[0])


async def test_a_writer_locked_out_too_long_gets_a_clear_busy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "_BUSY_BACKOFF_SECONDS", 0.001)
    db = await Database.open(tmp_path / "busy.sqlite3", busy_timeout_ms=20)
    try:
        with raw_connection(db.path) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(
                StorageBusyError, match=r"still locked by another writer.*busy_timeout_ms"
            ):
                await db.execute("INSERT INTO settings VALUES ('k', 'v', 'now')")
            other.execute("ROLLBACK")
        assert (await db.execute("INSERT INTO settings VALUES ('k', 'v', 'now')")).rowcount == 1
    finally:
        await db.close()
