"""Audit retention: delete rows older than a date and keep the rest of the chain verifiable.

The audit table refuses DELETE unless a permit covers the row; the permit lives only inside the
prune's own transaction. In that transaction the prune appends a chained ``audit.prune`` row
(so the prune itself is on the record), deletes the rows, and stores an anchor: the newest
pruned row's id and hash. :func:`storage.audit.verify_chain` starts from the newest anchor, so
the oldest remaining row must link to it exactly. The chain head is never pruned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from storage.audit import append_row, payload_digest
from storage.checks import require_text
from storage.clock import Clock, iso_utc
from storage.db import Database


@dataclass(frozen=True)
class PruneReport:
    pruned_rows: int
    last_id: int | None
    """The newest pruned row (the anchor), ``None`` when nothing was old enough."""
    kept_rows: int


async def prune_audit(
    db: Database, before: datetime, who: str, clock: Clock = time.time
) -> PruneReport:
    """Delete the audit rows written before ``before`` (never the newest row)."""
    require_text("who", who)
    if before.tzinfo is None:
        raise ValueError(f"before={before.isoformat()} has no time zone; give a UTC time")
    cutoff = iso_utc(before.timestamp())
    async with db.transaction() as tx:
        head = await tx.fetchone("SELECT MAX(id) AS id FROM audit")
        newest = head["id"] if head is not None else None
        found = await tx.fetchone(
            "SELECT MAX(id) AS id, COUNT(*) AS n FROM audit WHERE at < ? AND id < ?",
            (cutoff, newest if newest is not None else 0),
        )
        if found is None or found["id"] is None:
            total = await tx.fetchone("SELECT COUNT(*) AS n FROM audit")
            return PruneReport(0, None, int(total["n"]) if total is not None else 0)
        last_id = int(found["id"])
        last = await tx.fetchone("SELECT hash FROM audit WHERE id = ?", (last_id,))
        assert last is not None
        pruned = await tx.fetchone("SELECT COUNT(*) AS n FROM audit WHERE id <= ?", (last_id,))
        count = int(pruned["n"]) if pruned is not None else 0
        record = {"last_id": last_id, "last_hash": last["hash"], "before": cutoff, "rows": count}
        await append_row(
            tx,
            clock(),
            who,
            "audit.prune",
            f"rows up to {last_id}",
            payload_digest(record),
            "ok",
            1,
        )
        await tx.execute("INSERT INTO audit_prune_permit (up_to) VALUES (?)", (last_id,))
        await tx.execute("DELETE FROM audit WHERE id <= ?", (last_id,))
        await tx.execute("DELETE FROM audit_prune_permit")
        await tx.execute(
            "INSERT INTO audit_anchor (last_id, last_hash, pruned_rows, before, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (last_id, last["hash"], count, cutoff, iso_utc(clock())),
        )
        kept = await tx.fetchone("SELECT COUNT(*) AS n FROM audit")
    return PruneReport(count, last_id, int(kept["n"]) if kept is not None else 0)
