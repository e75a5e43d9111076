"""What the chaos harness checks once the storm is over, read from GitLab (no faults) and from
every host's SQLite file.

- lost: a goal not at the state expected of it, or done without its merge request merged;
- duplicates: a keyed note (``<!-- crewline:note key=K -->``) twice on one issue or MR, two
  claim notes of one run, more than one merge request or branch for one issue, an issue with
  more or fewer than one workflow label;
- double pickups, from GitLab: two claim notes of one role in one round (since the issue last
  got that role's ready label) that both acted as the holder, i.e. were renewed or released;
  losers delete their note and an orphan is never renewed, so only a second holder does that;
- double pickups, from the hosts' databases: two hosts completing one stage of one issue in
  the same round (the same attempt), or two completed runs of one stage whose work overlaps.
  A run's work ends with the move that completes its stage (its ``moved`` checkpoint); what
  it does after (its claim note's release, the notifications, recording its end) is
  bookkeeping that a restart may finish long after the next round began;
- crashes: a host process that ended by itself, other than killing itself after a decision
  note (the harness restarts it, which must not hide it);
- the audit chain of every host verifies.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gitlab

from forge.claim_notes import ClaimMarker, parse_time
from forge.types import LabelEvent, Note
from storage import verify_chain
from workflow import Workflow

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
    crashes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.duplicates or self.double_pickups or self.broken_chains
            or self.crashes
        )  # fmt: skip


@dataclass(frozen=True)
class RunRow:
    worker: str
    iid: int
    stage: str
    attempt: int
    status: str
    started: datetime
    finished: datetime | None
    moved: datetime | None = None  # when its completing move was recorded

    @property
    def work_ended(self) -> datetime | None:
        return self.moved or self.finished


def check_gitlab(
    gl: gitlab.Gitlab,
    project_path: str,
    expected: dict[int, str],
    found: Findings,
    *,
    workflow: Workflow,
    claim_ttl: float,
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
        prefix = f"crewline/{iid}-"
        own = [mr for mr in mrs if str(mr.source_branch).startswith(prefix)]
        if state != want:
            found.lost.append(f"#{iid} ended at {state} (expected {want})")
        elif want == "done" and not any(mr.state == "merged" for mr in own):
            found.lost.append(f"#{iid} is done but no merge request of it was merged")
        else:
            found.done += 1
        if len(own) > 1:
            found.duplicates.append(f"#{iid} has {len(own)} merge requests")
        if sum(1 for b in branches if b.startswith(prefix)) > 1:
            found.duplicates.append(f"#{iid} has more than one branch")
        notes = [Note.of(dict(n.attributes)) for n in issue.notes.list(get_all=True)]
        _keyed_twice(f"#{iid}", [note.body for note in notes], found)
        events = [
            LabelEvent.of(dict(e.attributes)) for e in issue.resourcelabelevents.list(get_all=True)
        ]
        found.double_pickups.extend(
            rounds_held_twice(f"#{iid}", notes, events, workflow, claim_ttl)
        )
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


def rounds_held_twice(
    where: str,
    notes: list[Note],
    events: list[LabelEvent],
    workflow: Workflow,
    claim_ttl: float,
) -> list[str]:
    """Rounds of a role in which two claim notes acted as the holder.

    A round of role R is everything since the issue last got R's ready label. A claim note
    acted as the holder when it was released, or renewed: its expiry lies more than the TTL
    after the note was posted (a claim is posted with TTL to run; the first renewal is due a
    third of the TTL later). Judged from GitLab alone, without the product's own round code."""
    found: list[str] = []
    held: dict[tuple[str, int], list[tuple[Note, ClaimMarker]]] = {}
    slack = timedelta(seconds=5)  # the posted expiry is rounded and set before the POST
    for note in notes:
        marker = ClaimMarker.parse(note.body)
        if marker is None or marker.role not in workflow.roles:
            continue
        posted = parse_time(note.created_at)
        renewed = marker.expires > posted + timedelta(seconds=claim_ttl) + slack
        if marker.ended != "released" and not renewed:
            continue
        ready = workflow.ready_state(marker.role).label
        opened = [
            e.id
            for e in events
            if e.action == "add" and e.label == ready and parse_time(e.created_at) <= posted
        ]
        held.setdefault((marker.role, max(opened, default=0)), []).append((note, marker))
    for (role, round_id), holders in sorted(held.items()):
        if len(holders) > 1:
            who = ", ".join(
                f"note {n.id} ({m.worker} run {m.run}, {m.ended or 'renewed'})" for n, m in holders
            )
            found.append(f"{where} {role} round {round_id} held by {len(holders)} claims: {who}")
    return found


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
            "SELECT worker, iid, stage, attempt, status, started_at, finished_at,"
            " (SELECT recorded_at FROM checkpoints AS c WHERE c.run_id = runs.id"
            "  AND c.step = 'moved') FROM runs WHERE project = ?",
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
            datetime.fromisoformat(moved) if moved else None,
        )
        for worker, iid, stage, attempt, status, started, finished, moved in raw
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
        # Every later run, not only the next: a long run may overlap a third one.
        for earlier, later in itertools.combinations(runs, 2):
            ended = earlier.work_ended
            assert ended is not None
            if later.worker != earlier.worker and later.started < ended:
                found.double_pickups.append(
                    f"#{iid} {stage}: {earlier.worker} (attempt {earlier.attempt}) and "
                    f"{later.worker} (attempt {later.attempt}) ran at once"
                )
