"""The hidden markers crewline puts in what it posts, so it can find its own notes again:
``<!-- crewline:note key=... -->`` for a keyed note (found before posting: a restart never
posts it twice), the claim marker of ``forge.claims``, and a one-off
``<!-- crewline:post id=... -->`` on any other note, so that a post whose answer was lost can
be found before it is retried (docs/decisions/0015)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from forge.sink import unmark
from forge.types import Note

NOTE_MARKER = "<!-- crewline:note key={key} -->"
POST_MARKER = "<!-- crewline:post id={id} -->"
_KEY = re.compile(r"^[A-Za-z0-9_.:/@#-]{1,200}$")
# The markers crewline appends to what it posts; the last one in a body is the note's own.
_OWN_MARKER = re.compile(r"<!-- crewline:(?:note|claim|post) [^<>]*? -->")


def note_marker(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"note key {key!r} must be 1-200 characters of [A-Za-z0-9_.:/@#-]")
    return NOTE_MARKER.format(key=key)


def own_marker(body: str) -> str | None:
    """The body's own crewline marker (a note key, a claim, a one-off), if it has one."""
    markers = _OWN_MARKER.findall(body)
    return str(markers[-1]) if markers else None


@dataclass(frozen=True)
class Findable:
    """How a note about to be posted is found again: by ``marker``, which is the body's own
    or a one-off appended when the note is sent (the guard and the audit see the body as
    its author wrote it)."""

    marker: str
    appended: bool

    def sent(self, body: str) -> str:
        return f"{body}\n\n{self.marker}" if self.appended else body


def findable(body: str) -> Findable:
    """How ``body`` (as given to the gateway) is found once sent: by its own marker if
    crewline sealed one in it (forge/sink.py), else by a one-off appended as it is sent."""
    own = own_marker(unmark(body))
    if own is not None:
        return Findable(own, appended=False)
    return Findable(POST_MARKER.format(id=uuid.uuid4().hex), appended=True)


def later_copies(notes: Iterable[Note]) -> list[Note]:
    """Keyed notes that repeat the key of a lower note by the same author. Two hosts that
    upsert one key at once both post; the later poster removes its copy once it sees the
    other, unless it is killed first (docs/decisions/0015), so whoever reads the notes
    later may remove it instead."""
    first: dict[str, Note] = {}
    copies: list[Note] = []
    for note in sorted(notes, key=lambda n: n.id):
        marker = own_marker(note.body)
        if marker is None or not marker.startswith("<!-- crewline:note key="):
            continue
        kept = first.setdefault(marker, note)
        if kept is not note and kept.author == note.author:
            copies.append(note)
    return copies
