"""The audit trail: append-only (SQLite triggers refuse UPDATE and DELETE) and hash-chained.

Each row stores ``prev_hash`` (the previous row's hash; 64 zeros for row 1) and
``hash = sha256(prev_hash + canonical JSON of {id, at, who, what, target, payload_digest,
verdict})``. Ids are assigned 1, 2, 3 … inside the same ``BEGIN IMMEDIATE`` transaction that reads
the chain head, so concurrent processes cannot fork the chain. Payloads are never stored, only
their sha256 digest: they may hold secrets.

:func:`verify_chain` needs no event loop (``crewline audit verify``). It finds an edited row, a
deleted row (a gap in the ids, or a broken link), and a row inserted out of order (a broken link,
a gap, or an id before 1); a path that is not a crewline database raises :class:`StorageError`. What a hash chain alone cannot see is the removal of the newest rows, or a
rewrite of the whole chain by someone who also recomputes every hash; keep the head hash
(:meth:`AuditLog.recent`) somewhere else if that matters.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.checks import require_int, require_text
from storage.clock import Clock, iso_utc, parse_iso
from storage.db import Database
from storage.errors import StorageError

GENESIS_HASH = "0" * 64
_COLUMNS = "id, at, who, what, target, payload_digest, verdict, prev_hash, hash"


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


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    """Rows verified intact: all of them when ``ok``, else those before ``first_bad_id``."""
    first_bad_id: int | None
    reason: str


def _canonical_json(value: Any) -> bytes:
    # default=str: a digest must never block an audited write because of an odd payload type.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def payload_digest(payload: Any) -> str:
    """sha256 of the payload: raw bytes as they are, anything else as canonical JSON."""
    data = bytes(payload) if isinstance(payload, bytes | bytearray) else _canonical_json(payload)
    return hashlib.sha256(data).hexdigest()


def row_hash(
    prev_hash: str,
    entry_id: int,
    at: str,
    who: str,
    what: str,
    target: str,
    payload_digest: str,
    verdict: str,
) -> str:
    fields = {
        "id": entry_id,
        "at": at,
        "who": who,
        "what": what,
        "target": target,
        "payload_digest": payload_digest,
        "verdict": verdict,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + _canonical_json(fields)).hexdigest()


class AuditLog:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def append(
        self, who: str, what: str, target: str, payload: Any, verdict: str = "ok"
    ) -> AuditEntry:
        """Record that ``who`` did ``what`` to ``target``; the payload is kept as a digest only."""
        for name, value in (("who", who), ("what", what), ("target", target), ("verdict", verdict)):
            require_text(f"audit {name}", value)
        digest = payload_digest(payload)
        async with self._db.transaction() as tx:
            head = await tx.fetchone("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            entry_id = int(head["id"]) + 1 if head is not None else 1
            prev_hash = head["hash"] if head is not None else GENESIS_HASH
            at = iso_utc(self._clock())
            entry_hash = row_hash(prev_hash, entry_id, at, who, what, target, digest, verdict)
            await tx.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, at, who, what, target, digest, verdict, prev_hash, entry_hash),
            )
        return AuditEntry(
            entry_id, parse_iso(at), who, what, target, digest, verdict, prev_hash, entry_hash
        )

    async def for_target(self, target: str, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` entries about ``target``, newest first."""
        require_int("limit", limit, minimum=1)
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM audit WHERE target = ? ORDER BY id DESC LIMIT ?",
            (target, limit),
        )
        return [_entry(row) for row in rows]

    async def recent(self, limit: int = 20) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first (the first one is the chain head)."""
        require_int("limit", limit, minimum=1)
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_entry(row) for row in rows]


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
            return _walk(connection.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id"))
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{path} cannot be read as an SQLite database ({exc}); pass the path of storage.path"
        ) from exc


def _walk(rows: sqlite3.Cursor) -> ChainReport:
    expected_id, expected_prev, intact = 1, GENESIS_HASH, 0
    for row_id, at, who, what, target, digest, verdict, prev_hash, stored_hash in rows:
        problem = None
        if row_id < expected_id:
            problem = f"row {row_id} sits before row 1: inserted out of order"
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
        elif row_hash(prev_hash, row_id, at, who, what, target, digest, verdict) != stored_hash:
            problem = "its content does not match its hash: the row was edited"
        if problem is not None:
            return ChainReport(False, intact, row_id, problem)
        expected_id, expected_prev, intact = expected_id + 1, stored_hash, intact + 1
    return ChainReport(True, intact, None, "ok")
