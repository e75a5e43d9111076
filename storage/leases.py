"""Leases with fencing tokens: at most one live holder per key, across every process on this host.

A lease is live while ``clock() < expires_at``. Every grant of a key carries a fencing token one
higher than the key's previous grant: the key's row outlives release, so a token is never reused,
whether the key was released, taken over after expiry, or re-acquired by the same holder.

Decisions, stated once:
- ``renew`` only extends a *live* lease held with the current token. An expired lease is dead even
  if nobody has taken it over yet: a janitor may already have seen it in :meth:`expired` and acted
  (moved the issue back to ready). The former holder must ``acquire`` again and get a new token.
- ``release`` clears the lease if holder and token are current, expired or not: it only frees a
  key nobody else holds. After a takeover the token differs and release changes nothing.
- ``get`` and ``held_by`` report live leases only; ``expired`` reports the dead, unreleased ones.
- ``acquire(..., retake=True)`` also grants a key whose live lease is held by the same holder:
  a holder named by a stable id (a worker id) that restarted takes back what its killed process
  held instead of waiting out the TTL. The token still advances, so the killed process's grant
  is fenced off (its renew and release change nothing). Another holder stays refused.

How it is stored (docs/decisions/0029): every operation is one SQL statement, atomic on its own,
on the database's lease connection (:meth:`Database.lease_statement`), run on the event loop
itself: no thread hop, no BEGIN/COMMIT round trips. Only when another writer holds the file's
lock does the statement move to a thread and wait there, so the loop never blocks on another
process. The connection commits with ``synchronous=NORMAL``: a crash of the
process loses nothing, a power loss may lose the last grants and releases. That is safe because
a lease only keeps apart this host's own processes, which all died with the power: a lost grant
was held by a dead process, a lost release only delays the key to its expiry (or its holder's
``retake``), and a reissued token cannot meet the token it repeats, whose holder is gone.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from storage.checks import require_number, require_text
from storage.clock import Clock
from storage.db import Database, Params


@dataclass(frozen=True)
class Lease:
    key: str
    holder: str
    token: int
    expires_at: float


_COLUMNS = "key, holder, token, expires_at"


class LeaseStore:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def acquire(
        self, key: str, holder: str, ttl: float, *, retake: bool = False
    ) -> Lease | None:
        """Take ``key`` for ``ttl`` seconds if it is free or its lease expired (or, with
        ``retake``, live but held by ``holder`` itself); else ``None``."""
        require_text("lease key", key)
        require_text("lease holder", holder)
        require_number("lease ttl", ttl, positive=True)
        # One statement: insert the key's first grant, or take it over when free or expired.
        rows = await self._run(
            f"""
            WITH clock(now) AS MATERIALIZED (SELECT crewline_now())
            INSERT INTO leases (key, token, holder, expires_at)
            SELECT ?, 1, ?, now + ? FROM clock WHERE true
            ON CONFLICT (key) DO UPDATE
                SET token = token + 1, holder = excluded.holder,
                    expires_at = excluded.expires_at
                WHERE leases.holder IS NULL OR leases.expires_at <= (SELECT now FROM clock)
                    OR (? AND leases.holder = excluded.holder)
            RETURNING {_COLUMNS}
            """,
            (key, holder, ttl, retake),
            "acquiring a lease",
        )
        return _lease(rows[0]) if rows else None

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend a live lease to ``clock() + ttl``; ``None`` if it expired, was released or lost."""
        require_number("lease ttl", ttl, positive=True)
        rows = await self._run(
            f"""
            WITH clock(now) AS MATERIALIZED (SELECT crewline_now())
            UPDATE leases SET expires_at = (SELECT now FROM clock) + ?
            WHERE key = ? AND holder = ? AND token = ? AND expires_at > (SELECT now FROM clock)
            RETURNING {_COLUMNS}
            """,
            (ttl, lease.key, lease.holder, lease.token),
            "renewing a lease",
        )
        return _lease(rows[0]) if rows else None

    async def release(self, lease: Lease) -> bool:
        """Free the key if ``lease`` is still its current grant; ``False`` if it was not."""
        rows = await self._run(
            """
            UPDATE leases SET holder = NULL, expires_at = NULL
            WHERE key = ? AND holder = ? AND token = ?
            RETURNING key
            """,
            (lease.key, lease.holder, lease.token),
            "releasing a lease",
        )
        return len(rows) == 1

    async def get(self, key: str) -> Lease | None:
        """The live lease on ``key``, or ``None`` when the key is free to acquire."""
        rows = await self._run(
            f"SELECT {_COLUMNS} FROM leases WHERE key = ? AND holder IS NOT NULL"
            " AND expires_at > crewline_now()",
            (key,),
            "reading a lease",
        )
        return _lease(rows[0]) if rows else None

    async def expired(self, now: float | None = None) -> list[Lease]:
        """Leases past their expiry that nobody released or took over, oldest expiry first."""
        rows = await self._run(
            f"""
            SELECT {_COLUMNS} FROM leases
            WHERE holder IS NOT NULL AND expires_at <= ? ORDER BY expires_at, key
            """,
            (self._clock() if now is None else now,),
            "reading expired leases",
        )
        return [_lease(row) for row in rows]

    async def held_by(self, holder: str) -> list[Lease]:
        """The live leases of ``holder``, by key."""
        rows = await self._run(
            f"SELECT {_COLUMNS} FROM leases WHERE holder = ? AND expires_at > crewline_now()"
            " ORDER BY key",
            (holder,),
            "reading leases",
        )
        return [_lease(row) for row in rows]

    async def _run(self, sql: str, params: Params, what: str) -> list[sqlite3.Row]:
        return await self._db.lease_statement(sql, params, self._clock, what)


def _lease(row: Any) -> Lease:
    return Lease(
        key=row["key"],
        holder=row["holder"],
        token=int(row["token"]),
        expires_at=float(row["expires_at"]),
    )
