"""What the chaos harness checks once the storm is over, read from GitLab (no faults) and from
every host's SQLite file.

- lost: a goal not at the state expected of it;
- duplicates: a keyed note (``<!-- crewline:note key=K -->``) twice on one issue or MR, two
  claim notes of one run, more than one merge request or branch for one issue, an issue with
  more or fewer than one workflow label;
- double pickups: two hosts completing one stage of one issue in the same round (the same
  attempt), or two completed runs of one stage whose lifetimes overlap;
- the audit chain of every host verifies.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gitlab

from storage import verify_chain

KEYED = re.compile(r"<!-- crewline:note key=(\S+) -->")
CLAIM_RUN = re.compile(r"<!-- crewline:claim [^<>]*?\brun=(\S+)")
COMPLETED = ("succeeded", "failed", "blocked")


@dataclass
class Findings:
    goals: int = 0
    done: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    double_pickups: list[str] = field(default_factory=list)
    broken_chains: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.double_pickups or self.broken_chains)


@dataclass(frozen=True)
class RunRow:
    worker: str
    iid: int
    stage: str
    attempt: int
    status: str
    started: datetime
    finished: datetime | None


def check_gitlab(
    gl: gitlab.Gitlab, project_path: str, expected: dict[int, str], found: Findings
) -> None:
    project = gl.projects.get(project_path)
    mrs = project.mergerequests.list(get_all=True, state="all")
    branches = [b.name for b in project.branches.list(get_all=True)]
    found.goals = len(expected)
    for iid, want in sorted(expected.items()):
        issue = project.issues.get(iid)
        flow = [label for label in issue.labels if label.startswith("workflow::")]
        if len(flow) != 1:
            found.duplicates.append(f"#{iid} has workflow labels {flow}")
        state = flow[0].removeprefix("workflow::") if len(flow) == 1 else None
        if state == want:
            found.done += 1
        else:
            found.lost.append(f"#{iid} ended at {state} (expected {want})")
        prefix = f"crewline/{iid}-"
        own = [mr for mr in mrs if str(mr.source_branch).startswith(prefix)]
        if len(own) > 1:
            found.duplicates.append(f"#{iid} has {len(own)} merge requests")
        if sum(1 for b in branches if b.startswith(prefix)) > 1:
            found.duplicates.append(f"#{iid} has more than one branch")
        _keyed_twice(f"#{iid}", _bodies(issue.notes), found)
        for mr in own:
            _keyed_twice(f"!{mr.iid}", _bodies(project.mergerequests.get(mr.iid).notes), found)


def _bodies(manager: Any) -> list[str]:
    return [str(note.body) for note in manager.list(get_all=True)]


def _keyed_twice(where: str, bodies: list[str], found: Findings) -> None:
    keys = Counter(m[1] for body in bodies for m in KEYED.finditer(body))
    runs = Counter(m[1] for body in bodies for m in CLAIM_RUN.finditer(body))
    for key, n in sorted(keys.items()):
        if n > 1:
            found.duplicates.append(f"{where}: note {key} x{n}")
    for run, n in sorted(runs.items()):
        if n > 1:
            found.duplicates.append(f"{where}: {n} claim notes of run {run}")


def check_hosts(databases: list[Path], project_path: str, found: Findings) -> None:
    rows: list[RunRow] = []
    for db in databases:
        if not db.exists():
            continue
        report = verify_chain(db)
        if not report.ok:
            found.broken_chains.append(f"{db}: row {report.first_bad_id}: {report.reason}")
        rows.extend(_runs(db, project_path))
    _double_pickups(rows, found)


def _runs(db: Path, project_path: str) -> list[RunRow]:
    with sqlite3.connect(db) as conn:
        raw = conn.execute(
            "SELECT worker, iid, stage, attempt, status, started_at, finished_at FROM runs "
            "WHERE project = ?",
            (project_path,),
        ).fetchall()
    return [
        RunRow(
            str(worker),
            int(iid),
            str(stage),
            int(attempt),
            str(status),
            datetime.fromisoformat(started),
            datetime.fromisoformat(finished) if finished else None,
        )
        for worker, iid, stage, attempt, status, started, finished in raw
    ]


def _double_pickups(rows: list[RunRow], found: Findings) -> None:
    completed = [r for r in rows if r.status in COMPLETED and r.finished is not None]
    by_round = Counter((r.iid, r.stage, r.attempt) for r in completed)
    for (iid, stage, attempt), n in sorted(by_round.items()):
        if n > 1:
            found.double_pickups.append(f"#{iid} {stage} attempt {attempt} completed {n} times")
    by_stage: dict[tuple[int, str], list[RunRow]] = {}
    for row in completed:
        by_stage.setdefault((row.iid, row.stage), []).append(row)
    for (iid, stage), runs in sorted(by_stage.items()):
        runs.sort(key=lambda r: r.started)
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished is not None
            if later.worker != earlier.worker and later.started < earlier.finished:
                found.double_pickups.append(
                    f"#{iid} {stage}: {earlier.worker} (attempt {earlier.attempt}) and "
                    f"{later.worker} (attempt {later.attempt}) ran at once"
                )
