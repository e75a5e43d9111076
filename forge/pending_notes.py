"""Keyed notes whose copy check has not run yet, kept in this host's database (SPEC §10).

Two hosts that upsert one keyed note at once both post; each then reads the notes back and
deletes its own copy if a lower one exists. A host killed between its post and that read leaves
its copy behind, and when the note records a decision that ends the work (a merge approved, an
issue done) nobody reads those notes again. So the host writes down *before* posting that a
copy check is owed, and clears it after the check; a restart (or the next janitor pass, after a
failed read) finishes what is still owed (docs/decisions/0015).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Noteable = Literal["issue", "mr"]

PREFIX = "pending-note:"


class SettingsLike(Protocol):
    """Where the owed checks are kept: ``storage.kv.SettingsStore`` is one."""

    async def set(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def keys(self, prefix: str) -> list[str]: ...


@dataclass(frozen=True)
class PendingNote:
    """One keyed note on one issue or MR whose copy check is owed."""

    project: str
    on: Noteable
    iid: int
    key: str

    def ref(self) -> str:
        sign = "#" if self.on == "issue" else "!"
        return f"{self.project}{sign}{self.iid} {self.key}"

    def setting(self) -> str:
        return PREFIX + json.dumps([self.project, self.on, self.iid, self.key])

    @classmethod
    def of_setting(cls, setting: str) -> PendingNote | None:
        """The entry a setting's name records, or ``None`` for a name this module never wrote."""
        try:
            project, on, iid, key = json.loads(setting.removeprefix(PREFIX))
        except (ValueError, TypeError):
            return None
        if on not in ("issue", "mr") or not isinstance(iid, int):
            return None
        return cls(str(project), on, iid, str(key))


class PendingNotes:
    """The owed copy checks of this host. Without a store (tests, one-off tools) it only
    tracks what is in flight in this process."""

    def __init__(self, store: SettingsLike | None = None) -> None:
        self.store = store
        self._inflight: set[PendingNote] = set()

    async def begin(self, note: PendingNote) -> None:
        """Record, durably, that ``note`` is about to be posted: called before the post."""
        self._inflight.add(note)
        if self.store is not None:
            await self.store.set(note.setting(), "owed")

    async def end(self, note: PendingNote) -> None:
        """The copy check of ``note`` ran: nothing is owed any more."""
        self._inflight.discard(note)
        if self.store is not None:
            await self.store.delete(note.setting())

    def abandon(self, note: PendingNote) -> None:
        """The post or its check failed in this process: the record stays for a later pass."""
        self._inflight.discard(note)

    async def owed(self) -> list[PendingNote]:
        """Checks owed by an earlier life of this host or by a step that failed, never one a
        step of this process is running now."""
        if self.store is None:
            return []
        entries = (PendingNote.of_setting(key) for key in await self.store.keys(PREFIX))
        return [entry for entry in entries if entry is not None and entry not in self._inflight]

    async def finish(self, check: Callable[[PendingNote], Awaitable[None]]) -> list[PendingNote]:
        """Run ``check`` for every owed entry and clear those it completed; an entry whose
        check raises stays owed (and the error is raised). Returns the completed entries."""
        done: list[PendingNote] = []
        for note in await self.owed():
            self._inflight.add(note)
            try:
                await check(note)
            except Exception:
                self.abandon(note)
                raise
            await self.end(note)
            done.append(note)
        return done
