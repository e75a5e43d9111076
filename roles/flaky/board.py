"""The flaky board for ``crewline status`` and the digest: the doctor's issues by stage and
cause, each with its failure rate before the fix (the reproducer's runs) and after it (the
validator's), and the CI runs the doctor spent on it (its re-runs, as listed in its notes).
One issue list per project, then the notes of each issue still open or validated."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from forge.gateway import Gateway
from forge.types import Issue
from roles.flaky.diagnosis import LABEL_SCOPE
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, measured_rate
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


@dataclass
class FlakyBoard:
    by_stage: dict[str, int] = field(default_factory=dict)
    by_cause: dict[str, int] = field(default_factory=dict)
    rows: list[FlakyRow] = field(default_factory=list)

    @property
    def ci_runs(self) -> int:
        return sum(row.ci_runs for row in self.rows)


async def flaky_board(
    gateway: Gateway, projects: list[str], flaky: Workflow, label: str
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


async def _row(gateway: Gateway, issue: Issue, stage: str) -> FlakyRow:
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
    spent = sum(b.count("job [") for b in notes if REPRODUCE_KEY in b or VALIDATE_KEY in b)
    return FlakyRow(
        issue.project,
        issue.iid,
        issue.title,
        stage,
        cause,
        before.p if before else None,
        after,
        spent,
    )
