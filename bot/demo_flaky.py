"""The demo's fifth goal: a flaky test, from CI history to a proven fix at the merge gate.

Once the four goals are done, a teammate (the maintainer) commits ``tests/test_sampling.py``
to ``main``: it slugifies a title picked by an unseeded ``random.choice``, and one title in
three has an accent that ``slugify`` folds, so the test fails about one run in three. The
demo re-runs main's pipeline, as a nightly build would, until that commit has both passed
and failed (real pipelines of the simulator running the test). From there crewline alone
works: the doctor's passes detect it from that history, re-run its job k times (p and its
interval), have the DEMO agent diagnose it (randomness without a seed), hand it to the
ordinary roles (the console desk approves the plan as for every goal), and, once the fix
waits at the merge gate, run its job N times on the fix's head. The desk leaves that merge to
a human. Only the history is the demo's doing; it runs after the other goals because a
flaky test on main would make their own pipelines flaky.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import gitlab

from roles.context import Services
from roles.flaky.board import flaky_board
from roles.flaky.diagnosis import DIAGNOSIS_KEY, LABEL_SCOPE
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, measured_rate
from roles.settings import FlakyDoctorSettings
from workflow import flaky_workflow, read_state

FLAKY_PATH = "tests/test_sampling.py"
FLAKY_TEST = "tests.test_sampling.SlugSampleTest.test_slug_of_a_sample_title"
FLAKY_SOURCE = """import random
import unittest

from app.text import slugify


class SlugSampleTest(unittest.TestCase):
    def test_slug_of_a_sample_title(self) -> None:
        title = random.choice(["Release notes", "Roadmap", "Café menu"])
        self.assertEqual(slugify(title), title.lower().replace(" ", "-"))
"""
HISTORY_BATCH = 3  # main's pipelines re-run at once
HISTORY_MAX = 24  # P(one commit never both red and green in 24 runs) < 1e-4 at p = 1/3
# k = 15: P(no failure in k runs) = (2/3)^15 < 0.3%; the ceiling bounds N at what a fix
# that changed nothing fails with probability 1 - (2/3)^20 > 99.9%.
DOCTOR = FlakyDoctorSettings(reproduce_runs=15, validate_ceiling=20)
_RUN = re.compile(r"^\d+\. job \[(\d+)\]\(.*\): (passed|FAILED)", re.M)
_NEEDED = re.compile(r"of N = (\d+)|/(\d+) green|of (\d+) failed")


@dataclass
class FlakyResult:
    iid: int | None
    test: str
    state: str  # the ordinary workflow's state (merge-ready: the human merges)
    flaky_state: str  # the doctor's (validated: N of N green)
    expected: str
    ok: bool
    states: list[str] = field(default_factory=list)  # both workflows' states, in order
    cause: str = ""
    history_pipelines: list[str] = field(default_factory=list)  # "#id status" on its commit
    p: float | None = None  # measured by the reproducer
    failures: int = 0
    reproduce_runs: list[str] = field(default_factory=list)  # "job id passed|FAILED"
    validate_n: int = 0
    validation_runs: list[str] = field(default_factory=list)
    ci_runs: int = 0  # the doctor's re-runs: reproduction and validation
    ci_minutes: float = 0.0


def make_history(url: str, token: str, project: str) -> list[str]:
    """Commit the flaky test to main as the maintainer, then re-run main's pipeline until
    that commit has both passed and failed. The pipelines, as "#id status"."""
    gl = gitlab.Gitlab(url, private_token=token)
    repo = gl.projects.get(project)
    commit = repo.commits.create(
        {
            "branch": "main",
            "commit_message": "Test slugs of sample titles",
            "actions": [{"action": "create", "file_path": FLAKY_PATH, "content": FLAKY_SOURCE}],
        }
    )
    pipelines = [p.id for p in repo.pipelines.list(sha=commit.id, get_all=True)]
    done: dict[int, str] = {}
    while True:
        for pid in pipelines:
            done[pid] = _finished(repo, pid)
        seen = set(done.values())
        if {"success", "failed"} <= seen or len(done) >= HISTORY_MAX:
            return [f"#{pid} {status}" for pid, status in sorted(done.items())]
        pipelines = [repo.pipelines.create({"ref": "main"}).id for _ in range(HISTORY_BATCH)]


def _finished(repo: Any, pipeline_id: int) -> str:
    while True:
        status = str(repo.pipelines.get(pipeline_id).status)
        if status in ("success", "failed", "canceled", "skipped"):
            return status
        time.sleep(0.1)  # in a worker thread


async def flaky_issue(services: Services, project: str) -> int | None:
    listed = await services.gateway.list_issues(project, labels=[DOCTOR.label], state="all")
    return min((issue.iid for issue in listed if FLAKY_TEST in issue.title), default=None)


async def flaky_settled(services: Services, project: str) -> bool:
    """The fix waits at the merge gate, proven: where the demo leaves it."""
    iid = await flaky_issue(services, project)
    if iid is None:
        return False
    issue = await services.gateway.get_issue(project, iid)
    merge = services.workflow.gate_state("merge").label
    return merge in issue.labels and flaky_workflow().state("validated").label in issue.labels


async def flaky_result(services: Services, project: str, history: list[str]) -> FlakyResult:
    wf, flaky = services.workflow, flaky_workflow()
    expected = f"{wf.gate_state('merge').name} + flaky::validated"
    iid = await flaky_issue(services, project)
    if iid is None:
        return FlakyResult(None, FLAKY_TEST, "(none)", "(none)", expected, False,
                           history_pipelines=history)  # fmt: skip
    gateway = services.gateway
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    stage = read_state(flaky, issue.labels).state
    visited = [
        found.label
        for event in await gateway.label_events(project, iid)
        if event.action == "add"
        and (found := wf.state_for_label(event.label) or flaky.state_for_label(event.label))
    ]
    notes = [n.body for n in await gateway.notes(project, iid) if n.by_crewline]
    reproduce = next((b for b in notes if REPRODUCE_KEY in b), "")
    validate = next((b for b in notes if VALIDATE_KEY in b), "")
    rate = measured_rate(reproduce)
    needed = _NEEDED.search(validate)
    board = await flaky_board(gateway, [project], flaky, DOCTOR.label)
    row = next((r for r in board.rows if r.iid == iid), None)
    prefix = f"{LABEL_SCOPE}::"
    result = FlakyResult(
        iid=iid,
        test=FLAKY_TEST,
        state=state.name if state else "(none)",
        flaky_state=stage.name if stage else "(none)",
        expected=expected,
        ok=False,
        states=visited,
        cause=next((lb.removeprefix(prefix) for lb in issue.labels if lb.startswith(prefix)), ""),
        history_pipelines=history,
        p=round(rate.p, 3) if rate else None,
        failures=rate.failures if rate else 0,
        reproduce_runs=[f"job {job} {verdict}" for job, verdict in _RUN.findall(reproduce)],
        validate_n=int(next(g for g in needed.groups() if g)) if needed else 0,
        validation_runs=[f"job {job} {verdict}" for job, verdict in _RUN.findall(validate)],
        ci_runs=row.ci_runs if row else 0,
        ci_minutes=round(row.ci_seconds / 60 if row else 0.0, 2),
    )
    result.ok = (
        result.state == wf.gate_state("merge").name
        and result.flaky_state == "validated"
        and result.cause == "unseeded-randomness"
        and result.failures > 0
        and len(result.validation_runs) == result.validate_n > 0
        and any(DIAGNOSIS_KEY in b for b in notes)
    )
    return result


async def history_in_thread(url: str, token: str, project: str) -> list[str]:
    return await asyncio.to_thread(make_history, url, token, project)
