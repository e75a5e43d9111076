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

How it is stored (docs/decisions/0029, 0038): every operation is one short transaction on the
database's lease connection (:meth:`Database.lease_call`), run on the event loop itself: no
thread hop. A write takes the file's write lock first (``BEGIN IMMEDIATE``) and reads the clock
after it, so a grant's instant is never before the release it follows. When another process
holds the lock the operation is retried after an ``asyncio.sleep``, so the loop never blocks on
another process. No statement uses ``RETURNING`` or a materialised CTE: SQLite builds those in a
temporary b-tree whose page cache (about 90 KB) was allocated and returned to the system on
every statement, and that cost more than everything else an operation does. The connection
commits with ``synchronous=NORMAL``: a crash of the process loses nothing, a power loss may lose
the last grants and releases. That is safe because a lease only keeps apart this host's own
processes, which all died with the power: a lost grant was held by a dead process, a lost release
only delays the key to its expiry (or its holder's ``retake``), and a reissued token cannot meet
the token it repeats, whose holder is gone.
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

        def grant(connection: sqlite3.Connection) -> Lease | None:
            now = self._clock()  # under the write lock: after any release it follows
            row = connection.execute(
                "SELECT token, holder, expires_at FROM leases WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                token = 1
                connection.execute(
                    "INSERT INTO leases (key, token, holder, expires_at) VALUES (?, 1, ?, ?)",
                    (key, holder, now + ttl),
                )
            elif row[1] is None or row[2] <= now or (retake and row[1] == holder):
                token = int(row[0]) + 1
                connection.execute(
                    "UPDATE leases SET token = ?, holder = ?, expires_at = ? WHERE key = ?",
                    (token, holder, now + ttl, key),
                )
            else:
                return None
            return Lease(key, holder, token, now + ttl)

        return await self._db.lease_call(grant, "acquiring a lease", write=True)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend a live lease to ``clock() + ttl``; ``None`` if it expired, was released or lost."""
        require_number("lease ttl", ttl, positive=True)

        def extend(connection: sqlite3.Connection) -> Lease | None:
            now = self._clock()
            changed = connection.execute(
                "UPDATE leases SET expires_at = ?"
                " WHERE key = ? AND holder = ? AND token = ? AND expires_at > ?",
                (now + ttl, lease.key, lease.holder, lease.token, now),
            ).rowcount
            return Lease(lease.key, lease.holder, lease.token, now + ttl) if changed else None

        return await self._db.lease_call(extend, "renewing a lease", write=True)

    async def release(self, lease: Lease) -> bool:
        """Free the key if ``lease`` is still its current grant; ``False`` if it was not."""

        def free(connection: sqlite3.Connection) -> bool:
            changed = connection.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL"
                " WHERE key = ? AND holder = ? AND token = ?",
                (lease.key, lease.holder, lease.token),
            ).rowcount
            return changed == 1

        # One statement, and it reads no clock: atomic without BEGIN IMMEDIATE.
        return await self._db.lease_call(free, "releasing a lease", write=False)

    async def get(self, key: str) -> Lease | None:
        """The live lease on ``key``, or ``None`` when the key is free to acquire."""
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM leases WHERE key = ? AND holder IS NOT NULL"
            " AND expires_at > ?",
            (key, self._clock()),
            "reading a lease",
        )
        return _lease(rows[0]) if rows else None

    async def expired(self, now: float | None = None) -> list[Lease]:
        """Leases past their expiry that nobody released or took over, oldest expiry first."""
        rows = await self._read(
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
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM leases WHERE holder = ? AND expires_at > ? ORDER BY key",
            (holder, self._clock()),
            "reading leases",
        )
        return [_lease(row) for row in rows]

    async def _read(self, sql: str, params: Params, what: str) -> list[Any]:
        return await self._db.lease_call(
            lambda connection: connection.execute(sql, params).fetchall(), what, write=False
        )


def _lease(row: Any) -> Lease:
    key, holder, token, expires_at = row
    return Lease(key=key, holder=holder, token=int(token), expires_at=float(expires_at))
