"""The janitor: recovers what crashed hosts left behind, on every host, safely at once.

- a running issue whose claim expired (or that has had no claim for a whole TTL) goes back
  to ready with a note "attempt k of n", or to failed once its attempts are spent; the claim
  is judged on fresh reads and only the round judged is re-queued, whatever the listing said
  (docs/decisions/0013); the flaky-test doctor's running states too (roles/flaky/janitor.py);
- an issue carrying two workflow labels is repaired to the more cautious one;
- an MR merged by hand moves its issue to done (and closes it);
- an MR whose head moved after QA passed it goes back to QA (a merge needs a green head);
- a decision recorded at a gate whose process died before moving the issue is completed;
- an agent's question unanswered for too long -> blocked;
- stuck work (no transition for too long, blocked, failed) is reported once per stay;
- what it did is reported to the notifier.

Its notes are keyed by the fact they report, so janitors of several hosts acting on the same
fact (each from its own listing) leave one note.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from forge import metrics
from forge.gateway import StaleState
from forge.types import Issue
from roles.attempts import round_attempt
from roles.context import Services
from roles.flaky.janitor import sweep_flaky
from roles.gates.decide import head_moved_key
from roles.gates.recovery import complete_recorded_decisions
from roles.mr_link import moved_since_qa, named_mr
from roles.notify import Event, EventKind
from roles.stuck import entered_at, stuck_items
from workflow import Outcome, StateKind, label_change, next_state, read_state

log = logging.getLogger(__name__)

_PASS_LONG = 3600.0  # within a janitor pass its own refresh is the listing


@dataclass
class JanitorReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    back_to_qa: list[str] = field(default_factory=list)
    decided: list[str] = field(default_factory=list)  # recorded gate decisions completed
    timed_out: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    copies_checked: list[str] = field(default_factory=list)  # keyed notes a crash left owed


@dataclass(frozen=True)
class JanitorLimits:
    stuck_after: float = 86400.0
    stuck_by_state: Mapping[str, float] = field(default_factory=dict)
    answer_timeout: float = 172800.0


async def claim_attempts(services: Services, issue: Issue, role: str) -> int:
    """The expired claim's attempt in its round: a round trip through QA or review is not a
    crash and does not use up ``max_attempts`` (roles/attempts.py)."""
    return round_attempt(await services.gateway.notes(issue.project, issue.iid), role)


async def sweep(
    services: Services,
    *,
    busy: Collection[tuple[str, int]] = (),
    limits: JanitorLimits | None = None,
) -> JanitorReport:
    """One janitor pass over every project; ``busy`` are issues this host is running now."""
    report = JanitorReport()
    limits = limits or JanitorLimits()
    # First what a crash or a failed read left owed: a keyed note's copy check (SPEC §10).
    report.copies_checked = await services.gateway.finish_pending_notes()
    for project in services.projects:
        # One listing serves the whole pass (a delta: one call when nothing changed). Each
        # step below reads it as it is now: the moves of earlier steps are in it already.
        index = services.gateway.issues
        await index.refresh(project)
        await _repair_labels(services, project, report)
        await _merged_by_hand(services, project, report)
        report.decided += await complete_recorded_decisions(services, project, max_age=_PASS_LONG)
        await _unanswered(services, project, limits.answer_timeout, report)
        listing = await index.current(project, max_age=_PASS_LONG)
        for role in services.workflow.roles:
            if role not in services.roles.by_name():
                continue
            # Claims.expire judges on its own fresh reads (docs/decisions/0013), whatever
            # the listing said.
            for issue in listing.at(services.workflow.running_state(role).label):
                if (issue.project, issue.iid) not in busy:
                    await _recover(services, issue, role, report)
        # The flaky-test doctor's steps claim on a workflow of their own.
        flaky = await sweep_flaky(services, listing, busy=busy)
        report.requeued += flaky.requeued
        report.failed += flaky.failed
    await _report_stuck(services, limits, report)
    metrics.janitor(report)
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
    twice = sorted(issue.iid for issue in services.gateway.issues.twice_labelled(project))
    for iid in twice:
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


async def _move(
    services: Services, issue: Issue, state: str, outcome: Outcome, note: str, key: str
) -> bool:
    """Move ``issue`` on from ``state`` and say why in the note keyed ``key`` (one per fact)."""
    target = next_state(services.workflow, state, outcome)
    try:
        await services.gateway.transition(issue.project, issue.iid, target, expect={state})
    except StaleState:
        return False
    await services.gateway.upsert_note(issue.project, issue.iid, key, note)
    kind = EventKind.BLOCKED if target == "blocked" else EventKind.TRANSITION
    await services.notifier.notify(
        Event(kind, issue.project, issue.iid, issue.title, note, state, target, issue.web_url)
    )
    return True


async def _merged_by_hand(services: Services, project: str, report: JanitorReport) -> None:
    """Waiting states whose MR a human merged in GitLab: the work is done. At the merge gate,
    an open MR whose head moved after QA passed it goes back to QA (a merge needs a green
    head). One read of the notes and the MR serves both checks."""
    wf = services.workflow
    gate = wf.gate_state("merge")
    for state in (wf.ready_state("review"), wf.ready_state("qa"), gate):
        # Closed too: merging an MR that says "Closes #N" closes the issue in GitLab (the
        # listing keeps closed issues at these states).
        listing = await services.gateway.issues.current(project, max_age=_PASS_LONG)
        listed = listing.at(state.label, closed=True)
        for issue in listed:
            notes = await services.notes_of(issue)
            mr = await named_mr(services.gateway, project, notes)
            if mr is None:
                continue  # no MR yet: asked again only once the issue changes
            if mr.state == "merged":
                note = f"!{mr.iid} was merged in GitLab; the work is done."
                key = f"merged:{mr.iid}"
                if await _move(services, issue, state.name, Outcome.MERGED, note, key):
                    await services.gateway.update_issue(project, issue.iid, state_event="close")
                    report.merged.append(issue.ref)
            elif state is gate and issue.state == "opened" and mr.state == "opened":
                moved = moved_since_qa(list(notes), mr)
                if moved is not None and await _move(
                    services, issue, gate.name, Outcome.HEAD_MOVED, moved, head_moved_key(mr)
                ):
                    report.back_to_qa.append(issue.ref)


async def _unanswered(
    services: Services, project: str, limit_seconds: float, report: JanitorReport
) -> None:
    waiting = services.workflow.states_of_kind(StateKind.WAITING)
    now = datetime.now(UTC)
    listing = await services.gateway.issues.current(project, max_age=_PASS_LONG)
    for state in waiting:
        for issue in listing.at(state.label):
            since = await entered_at(services, issue, state.label)
            waited = (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
            if waited < limit_seconds:
                continue
            note = (
                f"No answer to the agent's question for {waited / 3600:.1f} h: blocked. Answer "
                "it and retry the issue."
            )
            key = f"timed-out:{state.name}:{re.sub(r'[^0-9A-Za-z:.-]', '', since)}"
            if await _move(services, issue, state.name, Outcome.TIMED_OUT, note, key):
                report.timed_out.append(issue.ref)


async def _report_stuck(services: Services, limits: JanitorLimits, report: JanitorReport) -> None:
    kv = services.storage.settings
    for item in await stuck_items(
        services, stuck_after=limits.stuck_after, by_state=limits.stuck_by_state, max_age=_PASS_LONG
    ):
        key = f"stuck-told:{item.project}:{item.iid}"
        stay = f"{item.state}@{item.since}"
        if await kv.get(key) == stay:
            continue  # already told about this stay in this state
        await kv.set(key, stay)
        report.stuck.append(f"{item.project}#{item.iid}")
        await services.notifier.notify(
            Event(
                EventKind.STUCK,
                item.project,
                item.iid,
                item.title,
                f"{item.reason}; {item.action}",
                item.state,
                None,
                item.url,
            )
        )
