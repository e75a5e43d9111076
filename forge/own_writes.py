"""What this process wrote to GitLab, so the webhook events its own writes cause wake
nothing: the process already knows (the gateway tells its listeners as it writes).

Told apart by what the write carries back: an issue's ``updated_at`` after the update (the
issue hook carries the same), and the ids of notes posted or edited. Another host writing
under the same bot user gets other timestamps and other note ids, so its events still wake
this one. Bounded: only recent writes can come back as events.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import TypeVar

K = TypeVar("K")
KEEP = 4096


def _moment(stamp: str | datetime) -> datetime | None:
    if isinstance(stamp, datetime):
        return stamp
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


class OwnWrites:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._issues: OrderedDict[tuple[str, int, datetime], None] = OrderedDict()
        self._notes: OrderedDict[int, None] = OrderedDict()

    def issue_updated(self, project: str, iid: int, updated_at: str) -> None:
        moment = _moment(updated_at)
        if moment is not None:
            _remember(self._issues, (project, iid, moment), self.keep)

    def note_written(self, note_id: int) -> None:
        _remember(self._notes, note_id, self.keep)

    def issue_event(self, project: str, iid: int, updated_at: str | datetime | None) -> bool:
        """Whether an issue event with this ``updated_at`` is the echo of our own update."""
        moment = _moment(updated_at) if updated_at is not None else None
        return moment is not None and (project, iid, moment) in self._issues

    def note_event(self, note_id: int) -> bool:
        return note_id in self._notes


def _remember(seen: OrderedDict[K, None], key: K, keep: int) -> None:
    seen[key] = None
    seen.move_to_end(key)
    while len(seen) > keep:
        seen.popitem(last=False)
