"""What the engine and the roles say to each other: whether an issue may start now
(:class:`Admission`) and what a run came to (:class:`RoleResult`). The role protocol is a
port: :class:`roles.ports.Role`, re-exported here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from forge.sink import unmark
from roles.notify import EventKind, GateRequest
from roles.ports import Role as Role
from storage import RunStatus
from workflow import Outcome


class Verdict(StrEnum):
    GO = "go"
    WAIT = "wait"  # not now; the reason shows in `crewline status`
    BLOCK = "block"  # never without a human: the issue goes to blocked with the reason


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    reason: str = ""
    # What the engine does when it acts on this answer, such as telling the issue why it
    # waits; asking alone writes nothing (`crewline status` asks every ready issue).
    announce: Callable[[], Awaitable[None]] | None = field(default=None, compare=False)


GO = Admission(Verdict.GO)


@dataclass(frozen=True)
class RoleResult:
    outcome: Outcome
    message: str = ""  # posted as the run's closing note when not empty
    gate: GateRequest | None = None  # the human decision the next state waits for


@dataclass
class Waiting:
    role: str
    reason: str


def result_json(result: RoleResult) -> dict[str, Any]:
    """The result as checkpointed: its message through the sink (forge/sink.py), so every
    marker left in it is one crewline sealed; ``run.py`` seals them again to post it."""
    gate = asdict(result.gate) if result.gate is not None else None
    return {"outcome": str(result.outcome), "message": unmark(result.message), "gate": gate}


def result_of(data: dict[str, Any]) -> RoleResult:
    gate = data.get("gate")
    return RoleResult(
        Outcome(data["outcome"]),
        str(data.get("message") or ""),
        GateRequest(**gate) if isinstance(gate, dict) else None,
    )


def run_status(outcome: Outcome) -> RunStatus:
    if outcome is Outcome.SUCCEEDED:
        return RunStatus.SUCCEEDED
    if outcome is Outcome.BLOCKED:
        return RunStatus.BLOCKED
    return RunStatus.FAILED


def event_kind(target: str) -> EventKind:
    if target == "blocked":
        return EventKind.BLOCKED
    if target == "failed":
        return EventKind.FAILED
    if target == "needs-input":
        return EventKind.QUESTION
    return EventKind.TRANSITION
