"""The flaky board for ``crewline status``, the Discord digest and the weekly flaky note:
the doctor's issues by stage and cause, each with its failure rate before the fix (the
reproducer's runs) and after it (the validator's), and the CI runs and minutes the doctor
spent on it (its re-runs and their durations, as listed in its notes). One issue list per
project, then the notes of each issue still open or validated. :func:`board_lines` is the
one text form every surface shows."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from forge.types import Issue
from roles.flaky.diagnosis import LABEL_SCOPE
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, measured_rate
from roles.ports import IssueTracker
from workflow import Workflow, read_state


@dataclass
class FlakyRow:
    project: str
    iid: int
    title: str
    stage: str
    cause: str
    p_before: float | None
    p_after: float | None
    ci_runs: int
    ci_seconds: float = 0.0


_TOOK = re.compile(r"^\d+\. job \[\d+\]\(.*\): (?:passed|FAILED) in (\d+(?:\.\d+)?) s$", re.M)


@dataclass
class FlakyBoard:
    by_stage: dict[str, int] = field(default_factory=dict)
    by_cause: dict[str, int] = field(default_factory=dict)
    rows: list[FlakyRow] = field(default_factory=list)

    @property
    def ci_runs(self) -> int:
        return sum(row.ci_runs for row in self.rows)

    @property
    def ci_minutes(self) -> float:
        return sum(row.ci_seconds for row in self.rows) / 60

    def worst(self, count: int) -> list[FlakyRow]:
        """The ``count`` worst offenders still to be fixed: highest failure rate first."""
        open_rows = [row for row in self.rows if row.stage != "validated"]
        return sorted(open_rows, key=lambda r: (-(r.p_before or 0.0), r.project, r.iid))[:count]


def _rate(p: float | None) -> str:
    return "?" if p is None else f"{p:.2f}"


def row_line(row: FlakyRow) -> str:
    cause = f", {row.cause}" if row.cause else ""
    return (
        f"{row.project}#{row.iid:<5} {row.stage:<15} {row.title[:50]}  "
        f"p {_rate(row.p_before)} -> {_rate(row.p_after)}, {row.ci_runs} runs{cause}"
    )


def summary_line(board: FlakyBoard) -> str:
    """Counts by stage and cause, and what the doctor spent in CI."""
    return (
        "flaky tests: "
        + "  ".join(f"{stage} {count}" for stage, count in board.by_stage.items())
        + f"  (causes: {', '.join(f'{c} {n}' for c, n in board.by_cause.items())}; "
        + f"{board.ci_runs} CI runs, {board.ci_minutes:.1f} CI minutes spent)"
    )


def board_lines(board: FlakyBoard) -> list[str]:
    """The board as text: the summary, then one line per test."""
    return [summary_line(board), *(row_line(row) for row in board.rows)]


async def flaky_board(
    gateway: IssueTracker, projects: list[str], flaky: Workflow, label: str
) -> FlakyBoard:
    board = FlakyBoard()
    stages: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    for project in projects:
        for issue in await gateway.list_issues(project, labels=[label], state="all"):
            state = read_state(flaky, issue.labels).state
            if state is None or (issue.state != "opened" and state.name != "validated"):
                continue  # a duplicate, or a closed issue the board no longer shows
            row = await _row(gateway, issue, state.name)
            stages[row.stage] += 1
            causes[row.cause or "undiagnosed"] += 1
            board.rows.append(row)
    board.by_stage = {name: stages[name] for name in flaky.states if stages[name]}
    board.by_cause = dict(sorted(causes.items()))
    return board


async def _row(gateway: IssueTracker, issue: Issue, stage: str) -> FlakyRow:
    prefix = f"{LABEL_SCOPE}::"
    cause = next((lb.removeprefix(prefix) for lb in issue.labels if lb.startswith(prefix)), "")
    notes = [n.body for n in await gateway.notes(issue.project, issue.iid) if n.by_crewline]
    before = measured_rate("\n".join(b for b in notes if REPRODUCE_KEY in b))
    after_runs = [b for b in notes if VALIDATE_KEY in b]
    after = None
    if after_runs:
        text = after_runs[-1]
        runs, failed = text.count("job ["), text.count(": FAILED")
        after = failed / runs if runs else None
    runs_notes = [b for b in notes if REPRODUCE_KEY in b or VALIDATE_KEY in b]
    spent = sum(b.count("job [") for b in runs_notes)
    seconds = sum(float(took) for b in runs_notes for took in _TOOK.findall(b))
    return FlakyRow(
        issue.project,
        issue.iid,
        issue.title,
        stage,
        cause,
        before.p if before else None,
        after,
        spent,
        seconds,
    )
