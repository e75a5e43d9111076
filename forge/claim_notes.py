"""Claim notes as every host reads them: the hidden marker, the live claim, the round.

Pure reading of what GitLab returned; the protocol that writes them is forge/claims.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from forge.sink import seal
from forge.types import LabelEvent, Note

_MARKER = re.compile(r"<!-- crewline:claim ([^<>]*?) -->")
_FIELD = re.compile(r"(\w+)=(\S+)")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(moment: datetime) -> datetime:
    # The note carries whole seconds; what the claimer holds must equal what others read.
    return moment.replace(microsecond=0)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ClaimMarker:
    worker: str
    run: str
    role: str
    expires: datetime
    ended: str | None = None  # "released" | "expired" once the claim is over

    def render(self) -> str:
        fields = f"worker={self.worker} run={self.run} role={self.role} expires={iso(self.expires)}"
        if self.ended:
            fields += f" ended={self.ended}"
        return f"<!-- crewline:claim {fields} -->"

    @classmethod
    def parse(cls, body: str) -> ClaimMarker | None:
        match = _MARKER.search(body)
        if match is None:
            return None
        fields = dict(_FIELD.findall(match.group(1)))
        try:
            return cls(
                worker=fields["worker"],
                run=fields["run"],
                role=fields["role"],
                expires=parse_time(fields["expires"]),
                ended=fields.get("ended"),
            )
        except (KeyError, ValueError):
            return None  # a hand-edited or foreign marker never wins a claim

    def body(self) -> str:
        state = {
            None: f"claimed this issue for **{self.role}** (run `{self.run}`); the claim expires at "
            f"{iso(self.expires)} unless renewed.",
            "released": f"finished its **{self.role}** run `{self.run}` and released the claim.",
            "expired": f"did not renew its **{self.role}** claim (run `{self.run}`); it expired at "
            f"{iso(self.expires)}.",
        }[self.ended]
        return f"crewline worker `{self.worker}` {state}\n\n{seal(self.render())}"


@dataclass(frozen=True)
class ClaimView:
    """The live claim on an issue as any host sees it (the winning note)."""

    note: Note
    marker: ClaimMarker

    def expired(self, now: datetime) -> bool:
        return self.marker.expires <= now


def _note_id(view: ClaimView) -> int:
    return view.note.id


@dataclass(frozen=True)
class Round:
    """One role's round on an issue: everything since the issue last became ready."""

    id: int  # the label event that made the issue ready; 0 when it never was
    claims: tuple[ClaimView, ...]  # the role's claim notes posted since, lowest id first
    running_since: str | None  # when the running label was last added, if it was
    # Every note of the issue as read for this round (the run counts its attempt from them).
    notes: tuple[Note, ...] = field(default=(), compare=False, repr=False)
    # The label event that last added the running label (0: none since the round opened).
    # A claim carried over from the previous stage rides on it instead of a ready-add
    # (docs/decisions/0037).
    running_event: int = 0

    def live(self) -> ClaimView | None:
        """The live claim: the lowest claim note not ended, posted since the running label
        was last added (every claim note is posted after its claimer's move; an older one
        left unended by a crash belongs to an earlier stay in the running state)."""
        since = self.running_since or ""
        return min(
            (v for v in self.claims if v.marker.ended is None and v.note.created_at >= since),
            key=_note_id,
            default=None,
        )

    def winner(self, role: str) -> ClaimView | None:
        """Who won: the lowest claim note for ``role``, ended or not. A winner that already
        finished (and released) still won: a slow claimer that read the issue as ready
        before the winner moved it must lose the round, not inherit it."""
        return min((v for v in self.claims if v.marker.role == role), key=_note_id, default=None)


def opened_by(events: Sequence[LabelEvent], ready_label: str) -> LabelEvent | None:
    """The event that opened the current round: the last time the ready label was added."""
    return last_added(events, ready_label)


def last_added(events: Sequence[LabelEvent], label: str) -> LabelEvent | None:
    """The last event that added ``label`` (label event ids come from one sequence)."""
    adds = [e for e in events if e.action == "add" and e.label == label]
    return max(adds, key=lambda e: e.id, default=None)
