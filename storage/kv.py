"""Small host-local settings: the pause flag, poll cursors and the like (text or JSON values)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from storage.checks import require_text
from storage.clock import Clock, iso_utc
from storage.db import Database


class SettingsStore:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def get(self, key: str, default: str | None = None) -> str | None:
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return str(row["value"]) if row is not None else default

    async def set(self, key: str, value: str) -> None:
        require_text("setting key", key)
        if not isinstance(value, str):
            raise ValueError(
                f"setting {key!r} takes a string value, got {type(value).__name__}; "
                "use set_json() for other values"
            )
        await self._db.execute(
            """
            INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
            """,
            (key, value, iso_utc(self._clock())),
        )

    async def delete(self, key: str) -> bool:
        """Remove the setting; ``False`` if there was none."""
        written = await self._db.execute("DELETE FROM settings WHERE key = ?", (key,))
        return written.rowcount == 1

    async def keys(self, prefix: str) -> list[str]:
        """The names of the settings that start with ``prefix``, in order."""
        rows = await self._db.fetchall(
            "SELECT key FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [str(row["key"]) for row in rows]

    async def get_json(self, key: str, default: Any = None) -> Any:
        text = await self.get(key)
        return default if text is None else _loads(key, text)

    async def set_json(self, key: str, value: Any) -> None:
        await self.set(key, _dumps(key, value))

    async def update_json(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Replace the JSON value of ``key`` with ``change(current)`` in one transaction, so
        two concurrent read-modify-writes never lose one another's change; returns the new
        value. ``change`` gets ``default`` when the key is unset, and must not await."""
        require_text("setting key", key)
        async with self._db.transaction() as tx:
            row = await tx.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
            value = change(default if row is None else _loads(key, str(row["value"])))
            await tx.execute(
                """
                INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (key) DO UPDATE
                SET value = excluded.value, updated_at = excluded.updated_at
                """,
                (key, _dumps(key, value), iso_utc(self._clock())),
            )
        return value


def _loads(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"setting {key!r} does not hold JSON ({exc}); it was written with set(), "
            "read it with get()"
        ) from exc


def _dumps(key: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {key!r}: value is not JSON-serialisable ({exc})") from exc
