"""What a note hangs on (an issue, a merge request), how each kind is found, and the small
helpers every note module shares: strictly advancing timestamps and users by id."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sim.core.base import (
    Sim,
)
from sim.core.http import (
    iso,
    now_iso,
    parse_iso,
)


@dataclass(frozen=True)
class Noteable:
    type: str
    id: int
    iid: int
    table: str
    web_url: str
    hook_key: str
    hook_attributes: dict[str, Any]


NoteableLoader = Callable[[Sim, sqlite3.Row, int], Awaitable[Noteable | None]]


LOADERS: dict[str, NoteableLoader] = {}


def later_than(previous: str | None) -> str:
    """Now, or one millisecond after ``previous`` when the clock has not moved past it."""
    stamp = now_iso()
    if previous is None or stamp > previous:
        return stamp
    return iso(parse_iso(previous) + timedelta(milliseconds=1))


async def users_by_ids(sim: Sim, ids: Iterable[int]) -> dict[int, sqlite3.Row]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = await sim.store.fetchall(f"SELECT * FROM users WHERE id IN ({marks})", wanted)
    return {int(row["id"]): row for row in rows}


async def load_noteable(
    sim: Sim, project: sqlite3.Row, noteable_type: str, iid: int
) -> Noteable | None:
    loader = LOADERS.get(noteable_type)
    if loader is None:
        raise LookupError(f"no noteable type {noteable_type!r} is registered")
    return await loader(sim, project, iid)
