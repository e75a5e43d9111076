"""`crewline status`: the board by state, who runs what, what waits and why, and the fleet:
the hosts with live claims and their runs, the pause state and the fleet's spend today (read
from the claim notes and the control issues, so every host's work shows, not only this
one's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.app import Runtime
from forge.claims import ClaimMarker
from roles.engine import Verdict
from workflow import StateKind


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
    fleet: FleetSummary | None = None


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
        for state in wf:
            issues = await gateway.list_issues(project, labels=[state.label])
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
    return Board(counts, items, await fleet_summary(runtime, live))


async def fleet_summary(runtime: Runtime, live: dict[str, list[str]]) -> FleetSummary:
    """The pause state and every host's spend today, read fresh from the control issues
    (this host's own spend is published first), with the hosts that hold live claims."""
    fleet = runtime.services.fleet
    await fleet.refresh()
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
