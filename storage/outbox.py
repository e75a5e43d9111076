"""What a surface still has to send (the outbox), and the approval cards it posted.

A surface (Discord) queues its messages and edits here instead of in memory, so a restart
sends what was left. Each entry has a key: putting a key that is already queued does nothing
(one card per issue, gate and revision), unless the entry is meant to be replaced (the one
pending status edit of an issue shows its newest state): then its payload is replaced and its
version raised, and the sender's :meth:`Outbox.sent` removes it only at the version it sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from storage.checks import require_text
from storage.clock import Clock, iso_utc
from storage.db import Database


@dataclass(frozen=True)
class Outgoing:
    id: int
    key: str
    kind: str
    ref: str
    payload: dict[str, Any]
    version: int


@dataclass(frozen=True)
class PostedCard:
    ref: str
    gate: str
    revision: str
    channel_id: int
    message_id: int


class Outbox:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def put(
        self, key: str, kind: str, ref: str, payload: dict[str, Any], *, replace: bool = False
    ) -> bool:
        """Queue an entry; ``False`` when ``key`` was queued already (and, with ``replace``,
        its payload was replaced instead, keeping its place in the queue)."""
        require_text("outbox key", key)
        require_text("outbox kind", kind)
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False)
        update = "UPDATE SET payload = excluded.payload, version = version + 1"
        async with self._db.transaction() as tx:  # one statement: no read of its own after it
            row = await tx.fetchone(
                f"""
                INSERT INTO outbox (key, kind, ref, payload, created_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (key) DO {update if replace else "NOTHING"}
                RETURNING version
                """,
                (key, kind, ref, text, iso_utc(self._clock())),
            )
        return row is not None and int(row["version"]) == 1

    async def get(self, key: str) -> Outgoing | None:
        row = await self._db.fetchone("SELECT * FROM outbox WHERE key = ?", (key,))
        return _outgoing(row) if row is not None else None

    async def first(self) -> Outgoing | None:
        """The oldest entry still to send."""
        row = await self._db.fetchone("SELECT * FROM outbox ORDER BY id LIMIT 1")
        return _outgoing(row) if row is not None else None

    async def sent(self, entry: Outgoing) -> bool:
        """Remove ``entry`` unless it was replaced since it was read (then it is sent again,
        with its newest payload); whether it was removed."""
        written = await self._db.execute(
            "DELETE FROM outbox WHERE id = ? AND version = ?", (entry.id, entry.version)
        )
        return written.rowcount == 1

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) AS n FROM outbox")
        return int(row["n"]) if row is not None else 0


class PostedCards:
    """The approval cards a surface posted, open until their gate is decided."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def add(self, card: PostedCard) -> None:
        await self._db.execute(
            """
            INSERT INTO posted_cards (ref, gate, revision, channel_id, message_id, posted_at)
            VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """,
            (card.ref, card.gate, card.revision, card.channel_id, card.message_id,
             iso_utc(self._clock())),
        )  # fmt: skip

    async def posted(self, ref: str, gate: str, revision: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM posted_cards WHERE ref = ? AND gate = ? AND revision = ?",
            (ref, gate, revision),
        )
        return row is not None

    async def open(self, ref: str) -> list[PostedCard]:
        rows = await self._db.fetchall(
            "SELECT * FROM posted_cards WHERE ref = ? AND open = 1 ORDER BY posted_at", (ref,)
        )
        return [_card(row) for row in rows]

    async def close(self, card: PostedCard) -> None:
        await self._db.execute(
            "UPDATE posted_cards SET open = 0 WHERE ref = ? AND gate = ? AND revision = ?",
            (card.ref, card.gate, card.revision),
        )


def _outgoing(row: Any) -> Outgoing:
    return Outgoing(
        int(row["id"]), str(row["key"]), str(row["kind"]), str(row["ref"]),
        json.loads(str(row["payload"])), int(row["version"]),
    )  # fmt: skip


def _card(row: Any) -> PostedCard:
    return PostedCard(
        str(row["ref"]), str(row["gate"]), str(row["revision"]),
        int(row["channel_id"]), int(row["message_id"]),
    )  # fmt: skip
