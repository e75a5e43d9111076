"""Audit: append-only rows in a hash chain; verify_chain and ``crewline audit verify`` find tampering.

Tampering goes through the plain sqlite3 module after dropping the append-only triggers, as an
attacker with write access to the file would.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_cli import crewline

from storage import AuditLog, Database, StorageError, payload_digest, verify_chain
from storage.audit import GENESIS_HASH, row_hash
from storage.clock import iso_utc
from tests.support.storage import ManualClock, raw_connection

TARGETS = ["g/app#1", "g/app#2", "g/app#1", "g/app!5", "g/app#1"]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "audit.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def audit(db: Database, clock: ManualClock) -> AuditLog:
    return AuditLog(db, clock)


async def fill(audit: AuditLog, clock: ManualClock) -> None:
    """Five entries, one a second, rows 1..5 about TARGETS."""
    for index, target in enumerate(TARGETS):
        await audit.append("dev", "note.create", target, {"body": f"note {index}"})
        clock.advance(1)


def tamper(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    with raw_connection(path) as raw:
        raw.execute("DROP TRIGGER audit_refuses_update")
        raw.execute("DROP TRIGGER audit_refuses_delete")
        raw.execute(sql, params)


def forged_row(entry_id: int, prev_hash: str) -> tuple[object, ...]:
    """A row an attacker computes correctly from the published hashing rule."""
    at, digest = iso_utc(1_800_000_000), payload_digest({"body": "forged"})
    entry_hash = row_hash(prev_hash, entry_id, at, "mallory", "merge", "g/app!5", digest, "ok")
    return (entry_id, at, "mallory", "merge", "g/app!5", digest, "ok", prev_hash, entry_hash)


def stored_hash(path: Path, entry_id: int) -> str:
    with raw_connection(path) as raw:
        return str(raw.execute("SELECT hash FROM audit WHERE id = ?", (entry_id,)).fetchone()[0])


COLUMNS = "id, at, who, what, target, payload_digest, verdict, prev_hash, hash"
INSERT = f"INSERT INTO audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


# --- appending and reading ----------------------------------------------------------------------


async def test_append_chains_each_row_to_the_previous(audit: AuditLog, clock: ManualClock) -> None:
    first = await audit.append("pm", "issue.update", "g/app#1", {"labels": ["x"]}, "ok")
    clock.advance(2)
    second = await audit.append("alice#1234", "plan.approve", "g/app#1", b"raw", "allowed")
    assert (first.id, first.prev_hash) == (1, GENESIS_HASH)
    assert first.at == datetime.fromtimestamp(clock.now - 2, UTC)
    assert first.hash == row_hash(
        GENESIS_HASH,
        1,
        iso_utc(clock.now - 2),
        "pm",
        "issue.update",
        "g/app#1",
        first.payload_digest,
        "ok",
    )
    assert (second.id, second.prev_hash) == (2, first.hash)
    assert (second.who, second.what, second.verdict) == ("alice#1234", "plan.approve", "allowed")
    assert second.payload_digest == hashlib.sha256(b"raw").hexdigest()


async def test_only_a_digest_of_the_payload_is_stored(audit: AuditLog, db: Database) -> None:
    secret = "glpat-abcdefghijklmnopqrst"
    entry = await audit.append("dev", "note.create", "g/app#1", {"body": secret}, "refused")
    with raw_connection(db.path) as raw:
        row = raw.execute("SELECT * FROM audit").fetchone()
    assert all(secret not in str(value) for value in tuple(row))
    assert entry.payload_digest == payload_digest({"body": secret})


def test_payload_digest_is_canonical() -> None:
    assert payload_digest({"a": 1, "b": [1, 2]}) == payload_digest({"b": [1, 2], "a": 1})
    assert payload_digest({"a": 1}) != payload_digest({"a": 2})
    assert payload_digest(b'{"a":1}') == payload_digest({"a": 1})
    assert payload_digest(bytearray(b"x")) == hashlib.sha256(b"x").hexdigest()
    # An odd type must never block an audited write.
    assert len(payload_digest({"when": datetime(2024, 1, 1, tzinfo=UTC)})) == 64


async def test_for_target_and_recent_are_newest_first(audit: AuditLog, clock: ManualClock) -> None:
    await fill(audit, clock)
    assert [e.id for e in await audit.for_target("g/app#1")] == [5, 3, 1]
    assert [e.id for e in await audit.for_target("g/app#1", limit=2)] == [5, 3]
    assert await audit.for_target("g/nothing") == []
    recent = await audit.recent(limit=3)
    assert [e.id for e in recent] == [5, 4, 3]
    assert recent[1].target == "g/app!5"
    assert recent[0].prev_hash == recent[1].hash


@pytest.mark.parametrize("field", ["who", "what", "target", "verdict"])
async def test_append_refuses_empty_fields(audit: AuditLog, field: str) -> None:
    values = {"who": "dev", "what": "x", "target": "t", "verdict": "ok", field: " "}
    with pytest.raises(ValueError, match=f"audit {field} must be a non-empty string"):
        await audit.append(values["who"], values["what"], values["target"], {}, values["verdict"])
    assert await audit.recent() == []


async def test_limits_must_be_positive(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        await audit.recent(limit=0)
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        await audit.for_target("t", limit=-1)


async def test_concurrent_appends_from_two_connections_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "busy-audit.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        await asyncio.gather(
            *[
                AuditLog(db).append(f"w{index}", "note", "t", index)
                for index, db in enumerate([first, second] * 15)
            ]
        )
    finally:
        await first.close()
        await second.close()
    report = verify_chain(path)
    assert (report.ok, report.rows) == (True, 30)


async def test_a_row_sent_with_an_earlier_clock_keeps_the_trail_in_time_order(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    """Another host's clock, or a writer that waited for another's lock: a row is never
    dated before the row it follows (pruning by time relies on it), and still verifies."""
    first = await audit.append("dev", "note.create", "g/app#1", 1)
    clock.advance(-5)
    second = await audit.append("dev", "note.create", "g/app#1", 2)
    clock.advance(10)
    third = await audit.append("dev", "note.create", "g/app#1", 3)
    assert second.at == first.at
    assert (third.at - first.at).total_seconds() == 5
    assert verify_chain(db.path).ok


_APPENDER = """
import asyncio, sys
from pathlib import Path
from storage import AuditLog, Database

async def main(path: Path, name: str, rows: int) -> None:
    db = await Database.open(path)
    try:
        audit = AuditLog(db)
        for index in range(rows):
            await audit.append(name, "note.create", "g/app#1", index)
    finally:
        await db.close()

asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


def test_appends_from_several_processes_at_once_keep_one_chain(tmp_path: Path) -> None:
    """Each append is one statement that reads the head and inserts after it: SQLite takes
    the write lock before the read, so processes racing never fork the chain."""
    path = tmp_path / "shared-audit.sqlite3"
    root = Path(__file__).resolve().parent.parent
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(path), f"host-{index}", "40"], cwd=root
        )
        for index in range(4)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    report = verify_chain(path)
    assert (report.ok, report.rows) == (True, 160)
    with raw_connection(path) as raw:
        per_host = dict(raw.execute("SELECT who, COUNT(*) FROM audit GROUP BY who").fetchall())
    assert per_host == {f"host-{index}": 40 for index in range(4)}


# --- append-only --------------------------------------------------------------------------------


async def test_triggers_refuse_update_and_delete(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    await fill(audit, clock)
    with pytest.raises(sqlite3.IntegrityError, match="audit is append-only: UPDATE refused"):
        await db.execute("UPDATE audit SET verdict = 'ok' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="audit is append-only: DELETE refused"):
        await db.execute("DELETE FROM audit WHERE id = 5")
    with raw_connection(db.path) as raw, pytest.raises(sqlite3.IntegrityError, match="DELETE"):
        raw.execute("DELETE FROM audit")
    assert [e.id for e in await audit.recent()] == [5, 4, 3, 2, 1]
    assert verify_chain(db.path).ok


# --- verify_chain -------------------------------------------------------------------------------


async def test_an_intact_chain_verifies(audit: AuditLog, clock: ManualClock, db: Database) -> None:
    empty = verify_chain(db.path)
    assert (empty.ok, empty.rows, empty.first_bad_id) == (True, 0, None)
    await fill(audit, clock)
    report = verify_chain(db.path)
    assert (report.ok, report.rows, report.first_bad_id, report.reason) == (True, 5, None, "ok")


async def test_an_edited_row_is_named(audit: AuditLog, clock: ManualClock, db: Database) -> None:
    await fill(audit, clock)
    tamper(db.path, "UPDATE audit SET verdict = 'allowed' WHERE id = 3")
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id, report.rows) == (False, 3, 2)
    assert "does not match its hash: the row was edited" in report.reason


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    await fill(audit, clock)
    entry = (await audit.for_target("g/app#1"))[1]  # row 3
    digest = payload_digest({"body": "innocent"})
    new_hash = row_hash(
        entry.prev_hash,
        3,
        iso_utc(entry.at.timestamp()),
        "dev",
        "note.create",
        "g/app#1",
        digest,
        "ok",
    )
    tamper(
        db.path,
        "UPDATE audit SET payload_digest = ?, hash = ? WHERE id = 3",
        (digest, new_hash),
    )
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id) == (False, 4)
    assert "prev_hash does not match the hash of row 3" in report.reason


async def test_a_deleted_row_is_named(audit: AuditLog, clock: ManualClock, db: Database) -> None:
    await fill(audit, clock)
    tamper(db.path, "DELETE FROM audit WHERE id = 2")
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id, report.rows) == (False, 3, 1)
    assert "row 2 is missing: deleted" in report.reason


async def test_several_deleted_rows_are_named(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    await fill(audit, clock)
    tamper(db.path, "DELETE FROM audit WHERE id IN (2, 3)")
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id) == (False, 4)
    assert "rows 2..3 are missing" in report.reason


async def test_a_row_inserted_before_the_first_is_named(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    await fill(audit, clock)
    tamper(db.path, INSERT, forged_row(0, GENESIS_HASH))
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id, report.rows) == (False, 0, 0)
    assert "sits before row 1: inserted out of order" in report.reason


async def test_a_backdated_row_chained_to_an_old_row_is_named(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    """Appended at the end but linked to row 2, as if it had been written back then."""
    await fill(audit, clock)
    tamper(db.path, INSERT, forged_row(6, stored_hash(db.path, 2)))
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id, report.rows) == (False, 6, 5)
    assert "prev_hash does not match the hash of row 5" in report.reason


async def test_a_row_slipped_into_the_middle_is_named(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    """Rows 4..5 taken out, a forged row 4 linked correctly to row 3, and old row 5 put back."""
    await fill(audit, clock)
    with raw_connection(db.path) as raw:
        old_five = tuple(raw.execute(f"SELECT {COLUMNS} FROM audit WHERE id = 5").fetchone())
    tamper(db.path, "DELETE FROM audit WHERE id >= 4")
    with raw_connection(db.path) as raw:
        raw.execute(INSERT, forged_row(4, stored_hash(db.path, 3)))
        raw.execute(INSERT, old_five)
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id, report.rows) == (False, 5, 4)
    assert "prev_hash does not match the hash of row 4" in report.reason


async def test_a_row_with_an_id_past_a_gap_is_named(
    audit: AuditLog, clock: ManualClock, db: Database
) -> None:
    await fill(audit, clock)
    tamper(db.path, INSERT, forged_row(9, stored_hash(db.path, 5)))
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id) == (False, 9)
    assert "rows 6..8 are missing: deleted, or row 9 was inserted out of order" in report.reason


def test_verify_chain_refuses_what_is_not_a_crewline_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database file at"):
        verify_chain(tmp_path / "missing.sqlite3")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all " * 10)
    with pytest.raises(StorageError, match="cannot be read as an SQLite database"):
        verify_chain(junk)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="has no audit table: it is not a crewline database"):
        verify_chain(other)


# --- the CLI, as a real subprocess --------------------------------------------------------------


async def test_cli_audit_verify_exit_codes(
    audit: AuditLog, clock: ManualClock, db: Database, tmp_path: Path
) -> None:
    await fill(audit, clock)
    intact = await asyncio.to_thread(crewline, "audit", "verify", "--db", str(db.path))
    assert intact.returncode == 0, intact.stderr
    assert f"audit chain intact: 5 rows verified in {db.path}" in intact.stdout

    tamper(db.path, "UPDATE audit SET who = 'someone-else' WHERE id = 3")
    broken = await asyncio.to_thread(crewline, "audit", "verify", "--db", str(db.path))
    assert broken.returncode == 1, broken.stderr
    assert "audit chain BROKEN at row 3: its content does not match its hash" in broken.stdout

    missing = tmp_path / "nowhere.sqlite3"
    absent = await asyncio.to_thread(crewline, "audit", "verify", "--db", str(missing))
    assert absent.returncode == 2
    assert f"no database at {missing}: pass --db PATH" in absent.stderr
    assert "Traceback" not in absent.stderr and not missing.exists()

    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all " * 10)
    wrong = await asyncio.to_thread(crewline, "audit", "verify", "--db", str(junk))
    assert wrong.returncode == 2
    assert "cannot be read as an SQLite database" in wrong.stderr
    assert "Traceback" not in wrong.stderr
