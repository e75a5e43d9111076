"""The daily digest: what moved since the last one, what is stuck, what it cost, and the
flaky-test doctor's board (the same one `crewline status` shows: roles/flaky/board.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import discord

from bot.desk import Desk
from bot.desk_work import StuckItem, stuck_items
from bot.discord.cards import INFO_COLOUR, listing
from bot.discord.render import FIELD_VALUE, link, plain
from roles.flaky.board import FlakyBoard, board_lines, flaky_board
from storage import Spend
from workflow import flaky_workflow


@dataclass(frozen=True)
class Moved:
    ref: str
    title: str
    url: str
    states: list[str]  # every workflow state it entered since the digest's start, in order


@dataclass(frozen=True)
class Digest:
    since: datetime
    moved: list[Moved]
    stuck: list[StuckItem]
    spend: Spend
    flaky: FlakyBoard | None = None  # None: the doctor is off


async def build_digest(desk: Desk, since: datetime) -> Digest:
    services = desk.services
    wf, gateway = services.workflow, services.gateway
    moved: list[Moved] = []
    stamp = since.isoformat()
    for project in desk.projects:
        for issue in await gateway.list_issues(project, updated_after=stamp, state="all"):
            events = await gateway.label_events(project, issue.iid)
            entered = [
                state.name
                for event in events
                if event.action == "add"
                and _after(event.created_at, since)
                and (state := wf.state_for_label(event.label)) is not None
            ]
            if entered:
                moved.append(Moved(issue.ref, issue.title, issue.web_url, entered))
    schedule = desk.runtime.config.schedule
    stuck = await stuck_items(
        services, desk.projects, schedule.stuck_after_seconds, schedule.stuck_after_by_state
    )
    spend = await services.storage.runs.spend(since=since)
    doctor = desk.runtime.config.roles.flaky
    flaky = (
        await flaky_board(gateway, list(desk.projects), flaky_workflow(), doctor.label)
        if doctor.enabled
        else None
    )
    return Digest(since, moved, stuck, spend, flaky)


def _after(created_at: str, since: datetime) -> bool:
    try:
        return datetime.fromisoformat(created_at.replace("Z", "+00:00")) >= since
    except ValueError:
        return False


def digest_embed(digest: Digest) -> discord.Embed:
    embed = discord.Embed(
        title=f"Daily digest since {digest.since:%Y-%m-%d %H:%M} UTC", colour=INFO_COLOUR
    )
    moved = [
        f"{link(item.ref, item.url)} {plain(item.title, 60)}: {' → '.join(item.states)}"
        for item in digest.moved
    ]
    stuck = [
        f"{link(item.ref, item.url)} {item.state}: {plain(item.reason, 80)}"
        for item in digest.stuck
    ]
    embed.add_field(name=f"Moved ({len(moved)})", value=listing(moved, FIELD_VALUE), inline=False)
    embed.add_field(name=f"Stuck ({len(stuck)})", value=listing(stuck, FIELD_VALUE), inline=False)
    embed.add_field(
        name="Spend",
        value=f"${digest.spend.cost_usd:.2f}, {digest.spend.tokens:,} tokens",
        inline=False,
    )
    if digest.flaky is not None:
        embed.add_field(
            name=f"Flaky tests ({len(digest.flaky.rows)})",
            value=listing([plain(line, 200) for line in board_lines(digest.flaky)], FIELD_VALUE),
            inline=False,
        )
    return embed
