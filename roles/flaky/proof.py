"""The reproducer and the validator: the two steps that measure instead of guess.

The reproducer re-runs the suspect test's job on the commit it failed on k times and reports
the failure rate p with its Wilson interval in a note edited as the runs finish. A failure
moves the issue to ``flaky::reproduced``; none in k runs closes it at
``flaky::not-reproduced`` and doubles its bar, so the detector files it again only on more
evidence.

The validator runs the fixed test's job on the fix's head N times, N from the measured rate
(stats.runs_to_validate on the interval's lower end: a fix that did nothing fails validation
with probability at least 95% even where p was measured high by chance). Only N out of N
green reaches ``flaky::validated``; it stops at the first failure and sends the fix back to
``flaky::fixing`` with the failing run. Every run is linked in its note.

``measure`` and ``prove`` take the run as a callable, so the same decisions are checked
against the simulator's real jobs and against a scripted test over many seeds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from forge.sink import seal, seal_all
from forge.types import Issue
from roles.flaky.filing import bar_marker, bar_of
from roles.flaky.runs import LiveNote, Run
from roles.flaky.stats import Rate, runs_to_validate, validated, wilson
from roles.ports import IssueTracker
from workflow import Workflow, label_change

log = logging.getLogger(__name__)

RunOnce = Callable[[], Awaitable[Run]]
Progress = Callable[[list[Run]], Awaitable[None]]
_RATE = re.compile(r"<!-- crewline:flaky-rate failures=(\d+) runs=(\d+) -->")
REPRODUCE_KEY = "flaky-reproduce"
VALIDATE_KEY = "flaky-validate"


async def measure(run_once: RunOnce, k: int, progress: Progress | None = None) -> list[Run]:
    runs: list[Run] = []
    for _ in range(k):
        runs.append(await run_once())
        if progress is not None:
            await progress(runs)
    return runs


async def prove(run_once: RunOnce, needed: int, progress: Progress | None = None) -> list[Run]:
    """Up to ``needed`` runs, stopping at the first failure (it already decides)."""
    runs: list[Run] = []
    while len(runs) < needed and all(run.passed for run in runs):
        runs.append(await run_once())
        if progress is not None:
            await progress(runs)
    return runs


def rate_of(runs: list[Run]) -> Rate:
    return wilson(sum(1 for run in runs if not run.passed), len(runs))


def rate_marker(rate: Rate) -> str:
    return f"<!-- crewline:flaky-rate failures={rate.failures} runs={rate.runs} -->"


def measured_rate(notes_text: str) -> Rate | None:
    match = _RATE.search(notes_text)
    return wilson(int(match.group(1)), int(match.group(2))) if match else None


def needed_runs(rate: Rate, *, floor: int, ceiling: int) -> int:
    return runs_to_validate(rate.low, floor=floor, ceiling=ceiling)


@dataclass(frozen=True)
class Verdict:
    runs: list[Run]
    rate: Rate
    needed: int = 0

    @property
    def accepted(self) -> bool:
        return validated([run.passed for run in self.runs], self.needed)


class Proofs:
    """The two steps on an issue: notes, labels and the bar through the gateway."""

    def __init__(self, gateway: IssueTracker, flaky: Workflow) -> None:
        self.gateway = gateway
        self.flaky = flaky

    async def reproduce(
        self, issue: Issue, run_once: RunOnce, k: int, *, resume: str = ""
    ) -> Verdict:
        """``resume``: the marker of the runs started (roles/flaky/resume.py), kept in the
        note while the step is in progress and dropped from its final form."""
        note = LiveNote(self.gateway, issue.project, issue.iid, REPRODUCE_KEY)

        async def progress(runs: list[Run]) -> None:
            head = f"Reproducing: run {len(runs)} of {k}"
            await note.show(_runs_body(head, runs, rate_of(runs)) + _kept(resume))

        runs = await measure(run_once, k, progress)
        rate = rate_of(runs)
        head = "Reproduced" if rate.failures else "Not reproduced"
        await note.show(
            _runs_body(f"{head}: {rate.text()}", runs, rate) + "\n\n" + seal(rate_marker(rate))
        )
        if rate.failures:
            await self._move(issue, "reproduced")
        else:
            await self._not_reproduced(issue)
        log.info("flaky reproducer %s: %s", issue.ref, rate.text())
        return Verdict(runs, rate)

    async def validate(
        self, issue: Issue, run_once: RunOnce, *, floor: int, ceiling: int, resume: str = ""
    ) -> Verdict:
        notes = await self.gateway.notes(issue.project, issue.iid)
        before = measured_rate("\n".join(note.body for note in notes if note.by_crewline))
        if before is None:
            raise LookupError(f"{issue.ref}: no measured failure rate; reproduce it first")
        needed = needed_runs(before, floor=floor, ceiling=ceiling)

        note = LiveNote(self.gateway, issue.project, issue.iid, VALIDATE_KEY)

        async def progress(runs: list[Run]) -> None:
            head = f"Validating: run {len(runs)} of N = {needed}"
            await note.show(_runs_body(head, runs, rate_of(runs)) + _kept(resume))

        runs = await prove(run_once, needed, progress)
        verdict = Verdict(runs, rate_of(runs), needed)
        green = sum(1 for run in runs if run.passed)
        head = (
            f"Validated: {green}/{needed} green"
            if verdict.accepted
            else f"Not validated: run {len(runs)} of {needed} failed"
        )
        body = _runs_body(
            f"{head} (before the fix {before.text()}; N = {needed} makes a fix that changed "
            "nothing fail with probability at least 95%)",
            runs,
            verdict.rate,
        )
        await note.show(body)
        await self._move(issue, "validated" if verdict.accepted else "fixing")
        log.info("flaky validator %s: %s", issue.ref, head)
        return verdict

    async def _move(self, issue: Issue, target: str) -> Issue:
        fresh = await self.gateway.get_issue(issue.project, issue.iid)
        change = label_change(self.flaky, fresh.labels, target)
        return await self.gateway.update_issue(
            issue.project, issue.iid, add_labels=change.add, remove_labels=change.remove
        )

    async def _not_reproduced(self, issue: Issue) -> None:
        fresh = await self.gateway.get_issue(issue.project, issue.iid)
        bar = bar_of(fresh)
        change = label_change(self.flaky, fresh.labels, "not-reproduced")
        await self.gateway.update_issue(
            issue.project,
            issue.iid,
            add_labels=change.add,
            remove_labels=change.remove,
            state_event="close",
            # Read back through Trust: its markers are crewline's, sealed again to be kept.
            description=seal_all(fresh.description.replace(bar_marker(bar), bar_marker(bar * 2))),
        )


def _kept(marker: str) -> str:
    return f"\n\n{seal(marker)}" if marker else ""


def _runs_body(head: str, runs: list[Run], rate: Rate) -> str:
    lines = [f"**{head}**", "", *(run.line(n) for n, run in enumerate(runs, 1))]
    if runs:
        lines += ["", f"So far: {rate.text()}"]
    return "\n".join(lines)
