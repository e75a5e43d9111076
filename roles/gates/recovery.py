"""Gates left behind by a crash: decisions recorded but not applied, and gates nobody asked.

Each decision note is the record of a decision (see ``roles/gates/decide.py``); the janitor of any
host completes one whose process died before moving the issue. An issue waiting at a gate
whose request no surface took (the desk failed, or the process died before asking) is asked
again by the engine, from what GitLab holds: the newest plan, or the MR's head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from forge.types import Issue, Note
from roles.context import Services
from roles.gates.decide import (
    HUMAN_MERGES,
    apply_merge_decision,
    apply_plan_decision,
    gate_lease,
    issue_filer,
    merge_decision_key,
)
from roles.mr_link import issue_mr_and_notes, named_mr
from roles.notify import GateRequest
from roles.pm.plan_notes import decision_key, latest_plan
from roles.ports import IssueTracker

log = logging.getLogger(__name__)


async def complete_recorded_decisions(
    services: Services, project: str, *, max_age: float = 0.0
) -> list[str]:
    """Apply every decision recorded at a gate whose issue still waits there for the same
    revision; the refs of the issues moved on. From the project's listing, refreshed unless
    it is at most ``max_age`` seconds old."""
    gateway, wf = services.gateway, services.workflow
    plan_gate = wf.gate_state("plan").name
    moved: list[str] = []
    listing = await gateway.issues.current(project, max_age=max_age)
    for gate in (wf.gate_state("plan"), wf.gate_state("merge")):
        for issue in listing.at(gate.label):

            async def complete(issue: Issue = issue, gate: str = gate.name) -> bool:
                if gate == plan_gate:
                    return await _complete_plan(gateway, issue)
                return await _complete_merge(services, issue)

            async with gate_lease(
                services.storage.leases, project, issue.iid, services.worker
            ) as held:
                if not held:
                    continue  # a decision is being recorded here right now
                # A decision note changes the issue: one read per issue while it waits.
                applied = await services.gate_records.get(issue, gate.name, complete)
            if applied:
                log.info("completed a recorded decision: issue=%s gate=%s", issue.ref, gate.name)
                moved.append(issue.ref)
    return moved


async def _complete_plan(gateway: IssueTracker, issue: Issue) -> bool:
    notes = await gateway.notes(issue.project, issue.iid)
    current = latest_plan(notes)
    if current is None:
        return False
    recorded = await gateway.find_note(issue.project, issue.iid, decision_key(str(current[0].id)))
    if recorded is None:
        return False
    return (await apply_plan_decision(gateway, issue.project, issue.iid, recorded)).applied


async def _complete_merge(services: Services, issue: Issue) -> bool:
    mr, _ = await issue_mr_and_notes(services.gateway, issue.project, issue.iid)
    if mr is None or mr.state != "opened":
        return False  # a merged MR is the janitor's "merged in GitLab" case
    recorded = await services.gateway.find_note(
        issue.project, issue.iid, merge_decision_key(mr.sha)
    )
    if recorded is None or HUMAN_MERGES in recorded.body:
        return False
    decision = await apply_merge_decision(
        services.gateway, issue.project, issue.iid, mr, recorded, services.merger
    )
    return decision.applied


async def issues_at_gates(
    gateway: IssueTracker, project: str, *, max_age: float = 0.0
) -> list[tuple[Issue, str]]:
    """Every open issue waiting at a gate, with the gate's state name, from the project's
    listing (refreshed unless it is at most ``max_age`` seconds old)."""
    wf = gateway.workflow
    listing = await gateway.issues.current(project, max_age=max_age)
    return [
        (issue, gate.name)
        for gate in (wf.gate_state("plan"), wf.gate_state("merge"))
        for issue in listing.at(gate.label)
    ]


async def gate_request(
    gateway: IssueTracker, issue: Issue, gate: str, notes: Sequence[Note] | None = None
) -> GateRequest | None:
    """The request for ``issue`` waiting at ``gate``, rebuilt from GitLab; None when there
    is nothing to decide (no plan, no open MR). ``notes``: the issue's notes when the caller
    has them (read if not)."""
    if notes is None:
        notes = await gateway.notes(issue.project, issue.iid)
    if gate == gateway.workflow.gate_state("plan").name:
        current = latest_plan(list(notes))
        if current is None:
            return None
        note, plan = current
        return GateRequest(
            issue.project, issue.iid, issue.title, gate, str(note.id), plan.to_markdown(),
            issue.web_url, issue_filer(issue),
        )  # fmt: skip
    mr = await named_mr(gateway, issue.project, notes)
    if mr is None or mr.state != "opened":
        return None
    summary = f"Merge request !{mr.iid}: {mr.web_url}\nHead `{mr.sha[:10]}`"
    return GateRequest(
        issue.project, issue.iid, issue.title, gate, mr.sha, summary, mr.web_url, issue_filer(issue)
    )
