"""The janitor: recovers what crashed hosts left behind, on every host, safely at once.

- a running issue whose claim expired (or that has had no claim for a whole TTL) goes back
  to ready with a note "attempt k of n", or to failed once its attempts are spent;
- an issue carrying two workflow labels is repaired to the more cautious one;
- what it did is reported to the notifier.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from forge.claims import ClaimMarker
from forge.types import Issue
from roles.context import Services
from roles.notify import Event, EventKind
from workflow import Outcome, label_change, next_state, read_state

log = logging.getLogger(__name__)


@dataclass
class JanitorReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)


async def claim_attempts(services: Services, issue: Issue, role: str) -> int:
    notes = await services.gateway.notes(issue.project, issue.iid)
    markers = (ClaimMarker.parse(note.body) for note in notes)
    return sum(1 for marker in markers if marker is not None and marker.role == role)


async def sweep(services: Services, *, busy: Collection[tuple[str, int]] = ()) -> JanitorReport:
    """One janitor pass over every project; ``busy`` are issues this host is running now."""
    report = JanitorReport()
    for project in services.projects:
        await _repair_labels(services, project, report)
        for role in services.workflow.roles:
            if role not in services.roles.by_name():
                continue
            for issue in await services.claims.running(project, role):
                if (issue.project, issue.iid) not in busy:
                    await _recover(services, issue, role, report)
    return report


async def _recover(services: Services, issue: Issue, role: str, report: JanitorReport) -> None:
    wf = services.workflow
    limit = services.roles.by_name()[role].max_attempts
    attempts = await claim_attempts(services, issue, role)
    running = wf.running_state(role).name
    spent = attempts >= limit
    target = next_state(wf, running, Outcome.EXHAUSTED if spent else Outcome.EXPIRED)
    if spent:
        reason = f"The claim expired on attempt {attempts} of {limit}: no attempts left, failed."
    else:
        reason = (
            f"The claim expired (its worker stopped renewing it); re-queued "
            f"(attempt {attempts + 1} of {limit} next)."
        )
    if not await services.claims.expire(issue, role, reason=reason, target=target):
        return
    (report.failed if spent else report.requeued).append(issue.ref)
    kind = EventKind.FAILED if spent else EventKind.STUCK
    await services.notifier.notify(
        Event(kind, issue.project, issue.iid, issue.title, reason, running, target, issue.web_url)
    )


async def _repair_labels(services: Services, project: str, report: JanitorReport) -> None:
    wf = services.workflow
    seen: dict[int, Issue] = {}
    twice: set[int] = set()
    for state in wf.states.values():
        for issue in await services.gateway.list_issues(project, labels=[state.label]):
            if issue.iid in seen:
                twice.add(issue.iid)
            seen[issue.iid] = issue
    for iid in sorted(twice):
        issue = await services.gateway.get_issue(project, iid)
        reading = read_state(wf, issue.labels)
        if reading.state is None or not reading.needs_repair:
            continue
        change = label_change(wf, issue.labels, reading.state.name)
        await services.gateway.update_issue(
            project, iid, add_labels=change.add, remove_labels=change.remove
        )
        log.info("repaired workflow labels: issue=%s kept=%s", issue.ref, reading.state.name)
        report.repaired.append(issue.ref)
