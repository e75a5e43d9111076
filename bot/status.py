"""`crewline status`: the board by state, who runs what, what waits and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.app import Runtime
from forge.claims import ClaimMarker
from roles.engine import Verdict
from roles.flaky.board import FlakyBoard, flaky_board
from workflow import StateKind, flaky_workflow


@dataclass
class BoardItem:
    project: str
    iid: int
    title: str
    state: str
    detail: str  # worker, age and attempt for running items; the reason for waiting ones


@dataclass
class Board:
    counts: dict[str, int]
    items: list[BoardItem]
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
                        detail = (
                            f"worker {marker.worker}, for {_age(note.created_at, now)}, "
                            f"attempt {len(mine)}"
                        )
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
    return Board(counts, items, flaky)


def flaky_text(board: FlakyBoard) -> str:
    """The flaky board as text: counts by stage and cause, then one line per test."""

    def rate(p: float | None) -> str:
        return "?" if p is None else f"{p:.2f}"

    lines = [
        "flaky tests: "
        + "  ".join(f"{stage} {count}" for stage, count in board.by_stage.items())
        + f"  (causes: {', '.join(f'{c} {n}' for c, n in board.by_cause.items())}; "
        + f"{board.ci_runs} CI runs spent)"
    ]
    for row in board.rows:
        lines.append(
            f"{row.project}#{row.iid:<5} {row.stage:<15} {row.title[:50]}  "
            f"p {rate(row.p_before)} -> {rate(row.p_after)}, {row.ci_runs} runs"
            + (f", {row.cause}" if row.cause else "")
        )
    return "\n".join(lines)
