"""`crewline status`: the board by state, who runs what, what waits and why; the fleet (the
hosts with live claims and their runs, the pause state and the fleet's spend today, read from the
claim notes and the control issues, so every host's work shows, not only this one's); and the
GitLab rate budget (as GitLab reports it to this command, and this host's own rate as its running
`crewline run`/`worker` last recorded it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from bot.app import Runtime
from bot.scheduler import RATE_KEY
from forge.claims import ClaimMarker
from forge.rate import RateSnapshot
from roles.engine.loop import Verdict
from roles.flaky.board import FlakyBoard, board_lines, flaky_board
from workflow import StateKind, flaky_workflow


@dataclass
class BoardItem:
    project: str
    iid: int
    title: str
    state: str
    detail: str  # worker, age and attempt for running items; the reason for waiting ones


@dataclass
class HostLine:
    worker: str
    runs: list[str] = field(default_factory=list)  # "group/app#3 dev for 4m", live claims
    spent_usd: float = 0.0  # today (UTC), every project
    tokens: int = 0


@dataclass
class FleetSummary:
    paused: dict[str, str]  # by project: "not paused", "paused", "paused (every project)"
    hosts: list[HostLine]
    spent_usd: float  # the fleet's spend today
    tokens: int


@dataclass
class Board:
    counts: dict[str, int]
    items: list[BoardItem]
    rate: list[str] = field(default_factory=list)
    fleet: FleetSummary | None = None
    flaky: FlakyBoard | None = None  # the flaky-test doctor's issues (decision 0030)


def _age(since: str, now: datetime) -> str:
    try:
        seconds = (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return "?"
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{seconds / 3600:.1f}h"


async def board(runtime: Runtime) -> Board:
    services = runtime.services
    wf, gateway = services.workflow, services.gateway
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    items: list[BoardItem] = []
    live: dict[str, list[str]] = {}  # worker -> its runs with a live claim
    for project in services.projects:
        listing = await gateway.issues.refresh(project)  # one listing, not one per state
        for state in wf:
            issues = listing.at(state.label)
            counts[state.name] = counts.get(state.name, 0) + len(issues)
            for issue in issues:
                detail = ""
                if state.kind is StateKind.RUNNING and state.role:
                    notes = await gateway.notes(project, issue.iid)
                    mine = [
                        (note, marker)
                        for note in notes
                        if (marker := ClaimMarker.parse(note.body)) and marker.role == state.role
                    ]
                    if mine:
                        note, marker = mine[-1]
                        since = _age(note.created_at, now)
                        detail = f"worker {marker.worker}, for {since}, attempt {len(mine)}"
                        if marker.ended is None and marker.expires > now:
                            run = f"{issue.ref} {state.role} for {since}"
                            live.setdefault(marker.worker, []).append(run)
                elif state.kind is StateKind.READY and state.role in runtime.engine.roles:
                    role = runtime.engine.roles[state.role]
                    admission = await role.admit(services, issue)
                    if admission.verdict is not Verdict.GO:
                        detail = f"{admission.verdict.value}: {admission.reason}"
                elif state.kind in (StateKind.GATE, StateKind.WAITING):
                    detail = f"waiting for a human for {_age(issue.updated_at, now)}"
                items.append(BoardItem(project, issue.iid, issue.title, state.name, detail))
    doctor = runtime.config.roles.flaky
    flaky = (
        await flaky_board(gateway, list(services.projects), flaky_workflow(), doctor.label)
        if doctor.enabled
        else None
    )
    return Board(
        counts, items, await rate_lines(runtime), await fleet_summary(runtime, live), flaky
    )


async def rate_lines(runtime: Runtime) -> list[str]:
    """The budget as GitLab just reported it to this command, and this host's own rate."""
    now = time.time()
    client = runtime.client
    lines = [f"GitLab rate budget: {client.budget.snapshot().describe(now)} (this command)"]
    recorded = await runtime.storage.settings.get_json(RATE_KEY)
    host = _snapshot(recorded)
    if host is None:
        lines.append("this host: no rate recorded yet (recorded by `crewline run`/`worker`)")
    else:
        age = max(0, round(now - float(recorded["at"])))
        lines.append(f"this host, {age} s ago: {host.describe(float(recorded['at']))}")
    return lines


def _snapshot(recorded: Any) -> RateSnapshot | None:
    if not isinstance(recorded, dict) or "at" not in recorded:
        return None
    try:
        return RateSnapshot(**{f.name: recorded[f.name] for f in fields(RateSnapshot)})
    except (KeyError, TypeError):
        return None  # written by another version: not worth failing the board for


async def fleet_summary(runtime: Runtime, live: dict[str, list[str]]) -> FleetSummary:
    """The pause state and every host's spend today, read fresh from the control issues
    (this host's own spend from its records), with the hosts that hold live claims. Only
    read: a status command writes nothing to GitLab."""
    fleet = runtime.services.fleet
    await fleet.read()
    paused = {
        project: "paused (every project)"
        if fleet.paused_everywhere(project)
        else "paused"
        if fleet.paused(project)
        else "not paused"
        for project in runtime.services.projects
    }
    hosts = {worker: HostLine(worker, runs) for worker, runs in live.items()}
    for spend in await fleet.spend_today():
        line = hosts.setdefault(spend.worker, HostLine(spend.worker))
        line.spent_usd, line.tokens = spend.usd, spend.tokens
    rows = sorted(hosts.values(), key=lambda line: line.worker)
    return FleetSummary(
        paused, rows, sum(line.spent_usd for line in rows), sum(line.tokens for line in rows)
    )


def fleet_lines(fleet: FleetSummary) -> list[str]:
    """The fleet as `crewline status` prints it."""
    lines = ["", "fleet:"]
    lines += [f"  {project}: {state}" for project, state in fleet.paused.items()]
    for host in fleet.hosts:
        runs = ", ".join(host.runs) if host.runs else "no live claims"
        lines.append(
            f"  host {host.worker}: {runs}; spent today ${host.spent_usd:.2f}, "
            f"{host.tokens:,} tokens"
        )
    if not fleet.hosts:
        lines.append("  no host holds a claim or spent anything today")
    lines.append(f"  fleet spend today: ${fleet.spent_usd:.2f}, {fleet.tokens:,} tokens")
    return lines


def flaky_text(board: FlakyBoard) -> str:
    """The flaky board as text: counts by stage and cause, then one line per test."""
    return "\n".join(board_lines(board))
