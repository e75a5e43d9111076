"""Discord embeds for what the desk returns: approval cards, the board, the stuck list, the
audit trail and learnings. Every piece of untrusted text goes through ``bot/discord/render.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import discord

from bot.desk import Reply
from bot.desk_work import StuckItem
from bot.discord.render import (
    EMBED_DESCRIPTION,
    EMBED_TITLE,
    FIELD_VALUE,
    block,
    cut,
    link,
    plain,
    strip_details,
)
from bot.status import Board
from roles.notify import EventKind, GateRequest
from storage import AuditEntry, Learning
from workflow import Gate, State, StateKind, Workflow

GATE_COLOUR = discord.Colour(0xCC338B)
APPROVED_COLOUR = discord.Colour(0x2DA160)
REJECTED_COLOUR = discord.Colour(0xE67E22)
INFO_COLOUR = discord.Colour(0x1F75CB)
LIST_LIMIT = 25  # lines in a list embed; the rest is counted


def _url(url: str) -> str | None:
    return url if url.startswith(("http://", "https://")) else None


def gate_card(gate: GateRequest, kind: Gate, cost_usd: float) -> discord.Embed:
    """The approval card: the plan (or the MR's state) and what the decision is about."""
    what = "Plan" if kind == "plan" else "Merge"
    embed = discord.Embed(
        title=plain(f"{what} review: {gate.project}#{gate.iid} {gate.title}", EMBED_TITLE),
        url=_url(gate.url),
        colour=GATE_COLOUR,
        description=block(strip_details(gate.summary), 3500, gate.url, language="md"),
    )
    revision = f"plan note {gate.revision}" if kind == "plan" else f"head {gate.revision[:12]}"
    embed.add_field(name="Revision", value=plain(revision, FIELD_VALUE))
    embed.add_field(name="Cost so far", value=f"${cost_usd:.2f}")
    if gate.filer:
        embed.add_field(name="Filed by", value=plain(f"@{gate.filer}", FIELD_VALUE))
    return embed


def decided_card(
    card: discord.Embed | None, reply: Reply, who: str, when: datetime
) -> discord.Embed:
    """The card after a decision: who decided, when, and what happened."""
    embed = card.copy() if card is not None else discord.Embed(title="Decision")
    rejected = "changes requested" in reply.message.lower()
    embed.colour = REJECTED_COLOUR if rejected else APPROVED_COLOUR
    text = f"{reply.message}\n{who}, {when:%Y-%m-%d %H:%M} UTC"
    embed.add_field(name="Decision", value=plain(text, FIELD_VALUE), inline=False)
    return embed


CLOSED = "Closed"


def closed_card(card: discord.Embed | None, why: str, when: datetime) -> discord.Embed:
    """A card whose gate was decided elsewhere (in GitLab, on another host's surface) or
    whose revision was superseded: it says so, and its buttons are removed with this edit."""
    embed = card.copy() if card is not None else discord.Embed(title="Decision")
    embed.colour = INFO_COLOUR
    text = f"{why}\n{when:%Y-%m-%d %H:%M} UTC"
    embed.add_field(name=CLOSED, value=plain(text, FIELD_VALUE), inline=False)
    return embed


NOT_APPLIED = "Not applied"


def undecided_card(
    card: discord.Embed | None, reply: Reply, who: str, when: datetime
) -> discord.Embed:
    """The card after a decision that could not be applied (GitLab refused the merge): why,
    whose attempt, when; the gate stays open, so its buttons stay and a later try replaces
    this field."""
    embed = card.copy() if card is not None else discord.Embed(title="Decision")
    for index in reversed(range(len(embed.fields))):
        if embed.fields[index].name == NOT_APPLIED:
            embed.remove_field(index)
    text = f"{reply.message}\n{who}, {when:%Y-%m-%d %H:%M} UTC"
    embed.add_field(name=NOT_APPLIED, value=plain(text, FIELD_VALUE), inline=False)
    return embed


def listing(lines: Sequence[str], limit: int = EMBED_DESCRIPTION) -> str:
    """Whole lines (a cut never splits a link), at most LIST_LIMIT, then how many more."""
    shown: list[str] = []
    used = 0
    for line in lines[:LIST_LIMIT]:
        line = cut(line, limit - 40)
        if used + len(line) + 1 > limit - 40:
            break
        shown.append(line)
        used += len(line) + 1
    if len(shown) < len(lines):
        shown.append(f"… and {len(lines) - len(shown)} more")
    return "\n".join(shown) or "nothing"


def board_embed(board: Board, project: str | None = None) -> discord.Embed:
    counts = "  ".join(f"{state} **{count}**" for state, count in board.counts.items() if count)
    lines = [
        f"`{item.project}#{item.iid}` {item.state}: {plain(item.title, 80)}"
        + (f" ({plain(item.detail, 120)})" if item.detail else "")
        for item in board.items
    ]
    embed = discord.Embed(
        title=plain(f"Board: {project or 'every project'}", EMBED_TITLE),
        colour=INFO_COLOUR,
        description=listing(lines, EMBED_DESCRIPTION - 200),
    )
    embed.add_field(name="Counts", value=cut(counts or "no open work", FIELD_VALUE), inline=False)
    return embed


def stuck_embed(items: Sequence[StuckItem]) -> discord.Embed:
    lines = [
        f"{link(item.ref, item.url)} {item.state}: {plain(item.title, 80)} ({plain(item.reason, 160)})"
        + (f": {plain(item.hint, 160)}" if item.hint else "")
        for item in items
    ]
    return discord.Embed(
        title="Stuck work" if items else "Nothing is stuck",
        colour=REJECTED_COLOUR if items else APPROVED_COLOUR,
        description=listing(lines) if items else None,
    )


def audit_embed(ref: str, entries: Sequence[AuditEntry]) -> discord.Embed:
    lines = [
        f"`{entry.at:%m-%d %H:%M}` {plain(entry.who, 60)} {plain(entry.what, 60)} "
        f"**{plain(entry.verdict, 40)}**"
        for entry in entries
    ]
    return discord.Embed(
        title=plain(f"Audit trail of {ref}", EMBED_TITLE),
        colour=INFO_COLOUR,
        description=listing(lines) if lines else "no entries",
    )


def learnings_embed(query: str, found: Sequence[Learning]) -> discord.Embed:
    lines = [
        f"`{item.project}#{item.iid}` *{plain(item.kind, 40)}*: {plain(item.text, 300)}"
        for item in found
    ]
    return discord.Embed(
        title=plain(f"Learnings for: {query}", EMBED_TITLE),
        colour=INFO_COLOUR,
        description=listing(lines) if lines else "nothing recorded matches",
    )


@dataclass(frozen=True)
class IssueStatus:
    """What the status channel shows of one issue: its newest event, and its run."""

    project: str
    iid: int
    title: str
    state: str
    url: str
    kind: EventKind
    message: str
    at: datetime
    attempt: int | None = None
    worker: str = ""

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


def _owner(state: State | None) -> str:
    if state is None:
        return "-"
    if state.role is not None:
        return f"{state.role} role"
    if state.kind in (StateKind.GATE, StateKind.WAITING):
        return "a human"
    return "-"


def status_embed(status: IssueStatus, wf: Workflow) -> discord.Embed:
    state = wf.states.get(status.state)
    colour = discord.Colour(int(state.color.lstrip("#"), 16)) if state else INFO_COLOUR
    first = status.message.strip().splitlines()[0] if status.message.strip() else ""
    embed = discord.Embed(
        title=plain(f"{status.ref} {status.title}", EMBED_TITLE),
        url=_url(status.url),
        colour=colour,
        description=plain(first, 300, status.url) or None,
    )
    embed.add_field(name="State", value=plain(status.state or "?", FIELD_VALUE))
    embed.add_field(name="Owner", value=_owner(state))
    if status.attempt is not None:
        attempt = f"{status.attempt}" + (f" on {status.worker}" if status.worker else "")
        embed.add_field(name="Attempt", value=plain(attempt, FIELD_VALUE))
    embed.add_field(name="Updated", value=discord.utils.format_dt(status.at, "R"))
    return embed
