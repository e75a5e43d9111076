"""What the Discord surface queues in the outbox (``storage/outbox.py``), as JSON: each job's
kind, its idempotency key, and the event, gate request or embed it carries."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import discord

from bot.discord.cards import IssueStatus
from roles.notify import Event, EventKind, GateRequest

STATUS, DETAIL, CARD, QUESTIONS, FILER, DIGEST, CLOSE = (
    "status", "detail", "card", "questions", "filer", "digest", "close",
)  # fmt: skip


def status_key(ref: str) -> str:
    """One pending status edit per issue: a later transition replaces it."""
    return f"{STATUS}:{ref}"


def card_key(gate: GateRequest) -> str:
    """One card per issue, gate and revision."""
    return f"{CARD}:{gate.project}#{gate.iid}:{gate.gate}:{gate.revision}"


def event_key(kind: str, event: Event) -> str:
    """A detail line, a question prompt or a DM: one per event of an issue."""
    return f"{kind}:{event.ref}:{event.kind}:{event.from_state}:{event.to_state}:{event.at.isoformat()}"


def event_json(event: Event) -> dict[str, Any]:
    return {**asdict(event), "kind": str(event.kind), "at": event.at.isoformat()}


def event_of(data: dict[str, Any]) -> Event:
    return Event(**{**data, "kind": EventKind(data["kind"]), "at": _when(data["at"])})


def status_json(status: IssueStatus) -> dict[str, Any]:
    return {**asdict(status), "kind": str(status.kind), "at": status.at.isoformat()}


def status_of(data: dict[str, Any]) -> IssueStatus:
    return IssueStatus(**{**data, "kind": EventKind(data["kind"]), "at": _when(data["at"])})


def gate_json(gate: GateRequest) -> dict[str, Any]:
    return asdict(gate)


def gate_of(data: dict[str, Any]) -> GateRequest:
    return GateRequest(**data)


def embed_json(embed: discord.Embed) -> dict[str, Any]:
    return dict(embed.to_dict())


def embed_of(data: dict[str, Any]) -> discord.Embed:
    return discord.Embed.from_dict(data)


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
