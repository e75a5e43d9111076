"""Crash attempts, counted per stage and round from the claim notes every host reads.

A claim note is posted each time a role claims the issue, whatever brought it back: a crash
or an expired claim (the same round again), or a new round of work (QA or a review sent it
back, a human asked for changes). Only the first kind may spend ``max_attempts``: a run's
attempt in its round is the number of claim notes of its role since the last claim of any
other role. So three round trips through QA do not leave the developer one crash from
failing, and the round-trip bound (``roles.qa.max_round_trips``) is counted apart, from QA's
own notes.
"""

from __future__ import annotations

from collections.abc import Iterable

from forge.claims import ClaimMarker
from forge.markers import note_marker
from forge.types import Note
from roles.budget import HOLD_KEY

# The notice of a budget hold (roles/budget.py, key "budget-hold:<day>"): only crewline's
# own notes keep such a marker.
_HOLD = note_marker(f"{HOLD_KEY}:").removesuffix(" -->")


def round_attempt(notes: Iterable[Note], role: str) -> int:
    """``role``'s claims since another role last claimed the issue (notes in id order);
    0 when the last claim was another role's (or there is none)."""
    count = 0
    for note in sorted(notes, key=lambda n: n.id):
        marker = ClaimMarker.parse(note.body)
        if marker is not None:
            count = count + 1 if marker.role == role else 0
        elif _HOLD in note.body:  # a budget hold stopped the run: no crash, a fresh round
            count = 0
    return count


def claims_of(notes: Iterable[Note], role: str, *, upto: int | None = None) -> int:
    """Every claim ``role`` made on the issue (up to the claim note ``upto``): a run's
    number, unique over rounds.

    A run numbers itself up to its own claim note: a loser's note in its round has a
    higher id and is deleted soon after, so counting it too gave this run the number the
    next round's run would also get (two hosts' runs "qa-2" in a chaos run, whose keyed
    notes then collided)."""
    return sum(
        1
        for note in notes
        if (m := ClaimMarker.parse(note.body)) is not None
        and m.role == role
        and (upto is None or note.id <= upto)
    )
