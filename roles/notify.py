"""How the engine tells humans what happened, and how it asks them to decide.

The engine only knows these two interfaces. The console (``bot/console.py``) and Discord
(``bot/``) implement them; tests use :class:`EventLog`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    TRANSITION = "transition"
    BLOCKED = "blocked"
    FAILED = "failed"
    BUDGET = "budget"
    STUCK = "stuck"
    GATE = "gate"  # a human decision is needed (plan-review, merge-ready)
    QUESTION = "question"  # an agent asked; the question is a note keyed question:<run>
    INFO = "info"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    project: str
    iid: int
    title: str
    message: str
    from_state: str | None = None
    to_state: str | None = None
    url: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


_HIDDEN = re.compile(r"\s*<!--.*?-->", re.DOTALL)


def for_humans(text: str) -> str:
    """``text`` without the hidden markers (``<!-- crewline:... -->``) other hosts read."""
    return _HIDDEN.sub("", text).strip()


class Notifier(Protocol):
    async def notify(self, event: Event) -> None: ...


@dataclass(frozen=True)
class GateRequest:
    """A human decision the engine waits for: approve ``revision`` of ``gate`` or not."""

    project: str
    iid: int
    title: str
    gate: str  # the state name: "plan-review" or "merge-ready"
    revision: str  # plan note id or MR head sha: a decision on another revision is stale
    summary: str  # the plan, or the MR's state, in markdown
    url: str = ""
    filer: str = ""  # GitLab username of whoever filed the goal


class Desk(Protocol):
    """Where gate requests go; a decision comes back through ``roles.gates.decide``."""

    async def request(self, gate: GateRequest) -> None: ...


class EventLog:
    """A notifier and desk that remember everything (tests, `crewline demo --json`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gates: list[GateRequest] = []

    async def notify(self, event: Event) -> None:
        self.events.append(event)

    async def request(self, gate: GateRequest) -> None:
        self.gates.append(gate)


class Fanout:
    """One notifier that tells several (console and Discord, say); one failing never
    silences the others."""

    def __init__(self, *notifiers: Notifier) -> None:
        self.notifiers = notifiers

    async def notify(self, event: Event) -> None:
        for notifier in self.notifiers:
            try:
                await notifier.notify(event)
            except Exception:
                log.exception("notifier failed: issue=%s event=%s", event.ref, event.kind)
