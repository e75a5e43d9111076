"""Audit retention: reads counted per minute, and pruning that keeps the chain verifiable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_cli import crewline

from storage import AuditLog, Database, verify_chain
from storage.audit_prune import prune_audit
from storage.clock import iso_utc
from tests.support.storage import ManualClock, raw_connection

START = 1_700_000_040.0  # a whole minute, so "minute" boundaries in the tests are exact


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "audit.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def audit(db: Database, clock: ManualClock) -> AuditLog:
    return AuditLog(db, clock)


def rows(db: Database) -> list[tuple[int, str, str, str, int]]:
    with raw_connection(db.path) as raw:
        found = raw.execute("SELECT id, what, target, verdict, count FROM audit ORDER BY id")
        return [tuple(row) for row in found]  # type: ignore[misc]


async def test_reads_of_one_minute_become_one_row_per_operation_and_verdict(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    for n in range(100):
        await audit.record_read("w1", "gitlab.issue.list", "g/app", "ok")
        await audit.record_read("w1", "gitlab.note.list", f"g/app#{n % 3}", "ok")
        clock.advance(0.5)  # 50 s: still the same minute
    await audit.record_read("w1", "gitlab.note.list", "g/app#1", "error:503")
    assert rows(db) == []  # nothing written yet: reads wait for their minute to end
    clock.advance(15)
    await audit.record_read("w1", "gitlab.issue.list", "g/app", "ok")  # the next minute
    assert rows(db) == [
        (1, "gitlab.issue.list", "g/app", "ok", 100),
        (2, "gitlab.note.list", "g/app#1", "error:503", 1),
        (3, "gitlab.note.list", "3 targets", "ok", 100),
    ]
    await audit.flush_reads()
    assert rows(db)[-1] == (4, "gitlab.issue.list", "g/app", "ok", 1)
    assert verify_chain(db.path).ok


async def test_a_write_carries_the_reads_of_minutes_over_and_leaves_this_minutes_counting(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await audit.record_read("w1", "gitlab.issue.get", "g/app#4", "ok")
    await audit.record_read("w1", "gitlab.issue.get", "g/app#4", "ok")
    entry = await audit.append("w1", "gitlab.note.create", "g/app#4", {"body": "hi"})
    assert entry.id == 1  # the minute's reads are still counting
    await audit.record_read("w1", "gitlab.issue.get", "g/app#4", "ok")
    clock.advance(60)  # their minute is over: the next write takes them first
    entry = await audit.append("w1", "gitlab.note.create", "g/app#4", {"body": "again"})
    assert entry.id == 3
    assert rows(db) == [
        (1, "gitlab.note.create", "g/app#4", "ok", 1),
        (2, "gitlab.issue.get", "g/app#4", "ok", 3),
        (3, "gitlab.note.create", "g/app#4", "ok", 1),
    ]
    assert verify_chain(db.path).ok


async def test_the_count_is_covered_by_the_hash(audit: AuditLog, db: Database) -> None:
    for _ in range(7):
        await audit.record_read("w1", "gitlab.issue.list", "g/app", "ok")
    await audit.flush_reads()
    with raw_connection(db.path) as raw:
        raw.execute("DROP TRIGGER audit_refuses_update")
        raw.execute("UPDATE audit SET count = 2 WHERE id = 1")  # hide 5 reads
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id) == (False, 1)
    assert "edited" in report.reason


async def fill_days(audit: AuditLog, clock: ManualClock, days: int) -> None:
    """Two writes a day for ``days`` days."""
    for day in range(days):
        await audit.append("dev", "gitlab.note.create", f"g/app#{day}", {"day": day})
        clock.advance(3600)
        await audit.append("dev", "gitlab.issue.update", f"g/app#{day}", {"day": day})
        clock.advance(86_400 - 3600)


async def test_prune_deletes_old_rows_and_the_rest_still_verifies(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await fill_days(audit, clock, 5)  # rows 1..10
    cutoff = datetime.fromtimestamp(START + 2 * 86_400, UTC)  # rows 1..4 are older
    report = await prune_audit(db, cutoff, who="operator:test", clock=clock)
    assert (report.pruned_rows, report.last_id) == (4, 4)
    kept = rows(db)
    assert [row[0] for row in kept] == [5, 6, 7, 8, 9, 10, 11]
    assert kept[-1][1:3] == ("audit.prune", "rows up to 4")  # the prune is on the record
    chain = verify_chain(db.path)
    assert chain.ok and chain.rows == 7, chain

    later = await audit.append("dev", "gitlab.note.create", "g/app#9", {"after": True})
    assert later.id == 12 and verify_chain(db.path).ok


async def test_after_a_prune_tampering_is_still_found(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await fill_days(audit, clock, 4)
    await prune_audit(db, datetime.fromtimestamp(START + 86_400, UTC), "operator:test", clock)
    with raw_connection(db.path) as raw:
        raw.execute("DROP TRIGGER audit_refuses_delete")
        raw.execute("DELETE FROM audit WHERE id = 3")  # the oldest row left after the anchor
    report = verify_chain(db.path)
    assert (report.ok, report.first_bad_id) == (False, 4)
    assert "row 3 is missing" in report.reason


async def test_without_the_prune_a_delete_is_still_refused(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await fill_days(audit, clock, 3)
    await prune_audit(db, datetime.fromtimestamp(START + 86_400, UTC), "operator:test", clock)
    with raw_connection(db.path) as raw, pytest.raises(Exception, match="append-only"):
        raw.execute("DELETE FROM audit WHERE id = 3")
    with raw_connection(db.path) as raw, pytest.raises(Exception, match="append-only"):
        raw.execute("DELETE FROM audit_anchor")
    with raw_connection(db.path) as raw, pytest.raises(Exception, match="append-only"):
        raw.execute("UPDATE audit_anchor SET last_id = 1")


async def test_prune_never_removes_the_chain_head(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await fill_days(audit, clock, 2)  # rows 1..4
    future = datetime.fromtimestamp(clock.now + 10 * 86_400, UTC)
    report = await prune_audit(db, future, "operator:test", clock)
    assert report.last_id == 3  # row 4, the head, stays and the prune row follows it
    assert [row[0] for row in rows(db)] == [4, 5]
    assert verify_chain(db.path).ok
    again = await prune_audit(db, datetime.fromtimestamp(START, UTC), "operator:test", clock)
    assert again.last_id is None and again.kept_rows == 2


async def test_crewline_audit_prune_on_the_command_line(
    audit: AuditLog, db: Database, clock: ManualClock
) -> None:
    await fill_days(audit, clock, 3)
    cutoff = iso_utc(START + 86_400)[:19]  # a naive ISO time is taken as UTC
    done = crewline("audit", "prune", "--before", cutoff, "--db", str(db.path))
    assert done.returncode == 0, done.stderr
    assert "pruned 2 audit rows (up to row 2)" in done.stdout
    assert "audit chain intact: 5 rows verified from the anchor" in done.stdout
    verified = crewline("audit", "verify", "--db", str(db.path))
    assert verified.returncode == 0 and "audit chain intact: 5 rows" in verified.stdout

    bad = crewline("audit", "prune", "--before", "last tuesday", "--db", str(db.path))
    assert bad.returncode == 2
    assert "--before 'last tuesday' is not an ISO date or time" in bad.stderr
    future = crewline("audit", "prune", "--before", "2999-01-01", "--db", str(db.path))
    assert future.returncode == 2 and "is in the future" in future.stderr
