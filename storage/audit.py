"""The audit trail: append-only (SQLite triggers refuse UPDATE and DELETE) and hash-chained.

Each row stores ``prev_hash`` (the previous row's hash; 64 zeros for row 1) and ``hash``
(:mod:`storage.audit_hash`). Ids are assigned 1, 2, 3 … by the same write statement that
reads the chain head: SQLite takes the write lock before the statement reads anything, so
concurrent processes cannot fork the chain, and the statement hashes its row itself
(``crewline_audit_hash``, registered on the connection), so an append is one statement. Payloads are never stored, only
their sha256 digest: they may hold secrets.

:func:`verify_chain` needs no event loop (``crewline audit verify``). It finds an edited row, a
deleted row (a gap in the ids, or a broken link), and a row inserted out of order (a broken link,
a gap, or an id before 1); a path that is not a crewline database raises :class:`StorageError`. What a hash chain alone cannot see is the removal of the newest rows, or a
rewrite of the whole chain by someone who also recomputes every hash; keep the head hash
(:meth:`AuditLog.recent`) somewhere else if that matters.

Reads are many and tell little, so :meth:`AuditLog.record_read` keeps them in memory and writes
one row per (minute, who, operation, verdict) with their ``count``: once their minute is over,
with the next read or the next write (in its transaction, before it), or on
:meth:`AuditLog.flush_reads`. A write does not wait for the reads of its own minute, so the
trail lists them after it. A crash loses the reads still counting (those of the last minute in
which this host read anything: a polling host reads every minute); writes and decisions never are (each has its own row,
durable before :meth:`AuditLog.append` returns). Old rows are pruned with
:func:`storage.audit_prune.prune_audit`, which leaves an anchor the chain continues from.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.audit_hash import GENESIS_HASH, SQL_NAME, payload_digest, row_hash
from storage.checks import require_int, require_text
from storage.clock import Clock, iso_utc, parse_iso
from storage.db import Database, Transaction
from storage.errors import StorageError

__all__ = ["GENESIS_HASH", "AuditEntry", "AuditLog", "ChainReport", "payload_digest", "row_hash"]

_COLUMNS = "id, at, who, what, target, payload_digest, verdict, prev_hash, hash, count"
_READ_GROUP = 60.0  # seconds: reads are counted per minute


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    who: str
    what: str
    target: str
    payload_digest: str
    verdict: str
    prev_hash: str
    hash: str
    count: int = 1
    """How many calls the row stands for: 1 for writes and decisions, N for a minute of reads."""


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    """Rows verified intact: all of them when ``ok``, else those before ``first_bad_id``."""
    first_bad_id: int | None
    reason: str


_ReadKey = tuple[int, str, str, str]  # (minute, who, what, verdict)


class AuditLog:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock
        self._reads: dict[_ReadKey, Counter[str]] = {}
        self._oldest_minute: int | None = None  # of the pending reads: one compare per read

    async def append(
        self, who: str, what: str, target: str, payload: Any, verdict: str = "ok"
    ) -> AuditEntry:
        """Record that ``who`` did ``what`` to ``target``; the payload is kept as a digest only.
        The row is durable when this returns (its own statement, committed)."""
        _require_fields(who, what, target, verdict)
        row = (who, what, target, payload_digest(payload), verdict, 1)
        now = self._clock()
        # Reads of minutes already over go first, in the same transaction; those of this
        # minute keep counting, so most writes are one statement alone.
        pending = self._take_reads(int(now // _READ_GROUP))
        if not pending:
            return _appended(await self._db.returning(*_append_statement(now, *row)))
        async with self._db.transaction() as tx:
            for counted in pending:
                await append_row(tx, now, *counted)
            return await append_row(tx, now, *row)

    async def record_read(self, who: str, what: str, target: str, verdict: str = "ok") -> None:
        """Count a read; it is written with the others of its minute (see the module doc)."""
        _require_fields(who, what, target, verdict)
        minute = int(self._clock() // _READ_GROUP)
        self._reads.setdefault((minute, who, what, verdict), Counter())[target] += 1
        if self._oldest_minute is None or minute < self._oldest_minute:
            self._oldest_minute = minute
        elif self._oldest_minute < minute:
            await self._write_reads(self._take_reads(minute))

    async def flush_reads(self) -> None:
        """Write every counted read now (on shutdown, or before reading the trail)."""
        await self._write_reads(self._take_reads(None))

    def _take_reads(self, before_minute: int | None) -> list[_Row]:
        oldest = self._oldest_minute
        if oldest is None or (before_minute is not None and oldest >= before_minute):
            return []
        done = [k for k in self._reads if before_minute is None or k[0] < before_minute]
        rows = []
        for key in sorted(done):
            minute, who, what, verdict = key
            targets = self._reads.pop(key)
            target = next(iter(targets)) if len(targets) == 1 else f"{len(targets)} targets"
            digest = payload_digest({"minute": iso_utc(minute * _READ_GROUP), "targets": targets})
            rows.append((who, what, target, digest, verdict, sum(targets.values())))
        self._oldest_minute = min((key[0] for key in self._reads), default=None)
        return rows

    async def _write_reads(self, rows: list[_Row]) -> None:
        if not rows:
            return
        async with self._db.transaction() as tx:
            for row in rows:
                await append_row(tx, self._clock(), *row)

    async def for_target(self, target: str, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` entries about ``target``, newest first (counted reads included)."""
        require_int("limit", limit, minimum=1)
        await self.flush_reads()
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM audit WHERE target = ? ORDER BY id DESC LIMIT ?",
            (target, limit),
        )
        return [_entry(row) for row in rows]

    async def recent(self, limit: int = 20) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first (the first one is the chain head)."""
        require_int("limit", limit, minimum=1)
        await self.flush_reads()
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_entry(row) for row in rows]


_Row = tuple[str, str, str, str, str, int]  # who, what, target, payload digest, verdict, count


def _require_fields(who: str, what: str, target: str, verdict: str) -> None:
    for name, value in (("who", who), ("what", what), ("target", target), ("verdict", verdict)):
        require_text(f"audit {name}", value)


async def append_row(
    tx: Transaction,
    now: float,
    who: str,
    what: str,
    target: str,
    digest: str,
    verdict: str,
    count: int,
) -> AuditEntry:
    """Append one row at the chain head, inside the caller's ``BEGIN IMMEDIATE`` transaction."""
    return _appended(
        await tx.fetchall(*_append_statement(now, who, what, target, digest, verdict, count))
    )


# The head is the newest row, or the newest prune's anchor when every row was pruned, or
# genesis. Both columns of one source come from the same statement's snapshot. ``at`` is the
# time the row was sent, or its predecessor's when that is later (a writer that waited for
# another's lock, or another host's clock): the trail's times never go backwards, which
# pruning by time relies on. Stored timestamps are fixed-width text, so MAX compares them.
_APPEND = f"""
INSERT INTO audit ({_COLUMNS})
SELECT head.id + 1, head.at, :who, :what, :target, :digest, :verdict, head.hash,
       {SQL_NAME}(head.hash, head.id + 1, head.at, :who, :what, :target, :digest, :verdict, :count),
       :count
FROM (
    SELECT
        MAX(:at, COALESCE((SELECT at FROM audit ORDER BY id DESC LIMIT 1), :at)) AS at,
        COALESCE(
            (SELECT id FROM audit ORDER BY id DESC LIMIT 1),
            (SELECT last_id FROM audit_anchor ORDER BY id DESC LIMIT 1),
            0
        ) AS id,
        COALESCE(
            (SELECT hash FROM audit ORDER BY id DESC LIMIT 1),
            (SELECT last_hash FROM audit_anchor ORDER BY id DESC LIMIT 1),
            :genesis
        ) AS hash
) AS head
RETURNING {_COLUMNS}
"""


def _append_statement(
    now: float, who: str, what: str, target: str, digest: str, verdict: str, count: int
) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {"who": who, "what": what, "target": target, "digest": digest}
    values |= {"verdict": verdict, "count": count, "at": iso_utc(now), "genesis": GENESIS_HASH}
    return _APPEND, values


def _appended(rows: list[Any]) -> AuditEntry:
    if len(rows) != 1:  # an INSERT … SELECT of one row: anything else is a broken database
        raise StorageError(f"an audit append wrote {len(rows)} rows instead of one")
    return _entry(rows[0])


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        at=parse_iso(row["at"]),
        who=row["who"],
        what=row["what"],
        target=row["target"],
        payload_digest=row["payload_digest"],
        verdict=row["verdict"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        count=int(row["count"]),
    )


def verify_chain(path: Path) -> ChainReport:
    """Walk the whole audit chain of the database at ``path``, read-only, without an event loop."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"no database file at {path}; pass the path of storage.path")
    try:
        connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            known = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'"
            ).fetchone()
            if known is None:
                raise StorageError(
                    f"{path} has no audit table: it is not a crewline database; "
                    "pass the path of storage.path"
                )
            start = _anchor(connection)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(audit)")}
            select = _COLUMNS if "count" in columns else _COLUMNS.replace("count", "1")
            rows = connection.execute(f"SELECT {select} FROM audit ORDER BY id")
            return _walk(rows, *start)
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{path} cannot be read as an SQLite database ({exc}); pass the path of storage.path"
        ) from exc


def _anchor(connection: sqlite3.Connection) -> tuple[int, str, str]:
    """Where the chain starts: row 1 from genesis, or after the newest prune's anchor."""
    has_anchors = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_anchor'"
    ).fetchone()
    anchor = (
        connection.execute(
            "SELECT last_id, last_hash FROM audit_anchor ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if has_anchors
        else None
    )
    if anchor is None:
        return 1, GENESIS_HASH, "row 1"
    return int(anchor[0]) + 1, str(anchor[1]), f"the prune anchor (rows up to {anchor[0]})"


def _walk(rows: sqlite3.Cursor, first_id: int, first_prev: str, origin: str) -> ChainReport:
    expected_id, expected_prev, intact = first_id, first_prev, 0
    for row in rows:
        row_id, at, who, what, target, digest, verdict, prev_hash, stored_hash = row[:9]
        count = row[9]
        problem = None
        if row_id < expected_id:
            problem = f"row {row_id} sits before {origin}: inserted out of order"
        elif row_id > expected_id:
            missing = (
                f"row {expected_id} is"
                if row_id == expected_id + 1
                else f"rows {expected_id}..{row_id - 1} are"
            )
            problem = f"{missing} missing: deleted, or row {row_id} was inserted out of order"
        elif prev_hash != expected_prev:
            problem = (
                f"its prev_hash does not match the hash of row {row_id - 1}: that row was "
                "rewritten with a new hash, or this row was inserted out of order"
            )
        elif (
            row_hash(prev_hash, row_id, at, who, what, target, digest, verdict, count)
            != stored_hash
        ):
            problem = "its content does not match its hash: the row was edited"
        if problem is not None:
            return ChainReport(False, intact, row_id, problem)
        expected_id, expected_prev, intact = expected_id + 1, stored_hash, intact + 1
    return ChainReport(True, intact, None, "ok")
