"""Human decisions at the plan gate: approve, or request changes with feedback.

Idempotent and revision-checked: a decision names the plan it is about (the plan note id);
a decision on an older plan, or a second decision on the same plan, changes nothing and
says why. The note crewline writes says who decided and through which surface.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from forge.gateway import Gateway, StaleState
from roles.plan_notes import FEEDBACK_HEADING, decision_key, latest_plan
from storage import LeaseStore
from workflow import Outcome, next_state, read_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    applied: bool
    message: str


async def decide_plan(
    gateway: Gateway,
    leases: LeaseStore,
    project: str,
    iid: int,
    *,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    feedback: str = "",
) -> Decision:
    """Apply a human's decision on the plan ``revision`` of ``project#iid``."""
    if not approve and not feedback.strip():
        return Decision(False, "say what should change: feedback is required to reject a plan")
    lease = await leases.acquire(f"gate:{project}:{iid}", who, 60)
    if lease is None:
        return Decision(False, "another decision on this issue is being recorded; try again")
    try:
        return await _decide(gateway, project, iid, revision, approve, who, via, feedback)
    finally:
        await leases.release(lease)


async def _decide(
    gateway: Gateway,
    project: str,
    iid: int,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    feedback: str,
) -> Decision:
    wf = gateway.workflow
    gate = wf.gate_state("plan").name
    notes = await gateway.notes(project, iid)
    key = decision_key(revision)
    earlier = next((note for note in notes if f"key={key} " in note.body), None)
    if earlier is not None:
        first_line = earlier.body.splitlines()[0]
        return Decision(False, f"already decided at {earlier.created_at}: {first_line}")
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    if state is None or state.name != gate:
        where = state.name if state else "no workflow state"
        return Decision(False, f"{issue.ref} is not waiting for a plan decision (it is at {where})")
    current = latest_plan(notes)
    if current is None or str(current[0].id) != revision:
        return Decision(False, f"stale: plan {revision} is not the newest plan of {issue.ref}")
    outcome = Outcome.APPROVED if approve else Outcome.REJECTED
    if approve:
        body = f"Plan approved by {who} via {via}."
    else:
        quoted = "\n".join(f"> {line}" for line in feedback.strip().splitlines())
        body = f"Plan changes requested by {who} via {via}.\n\n{FEEDBACK_HEADING}\n\n{quoted}"
    await gateway.upsert_note(project, iid, key, body)
    try:
        await gateway.transition(project, iid, next_state(wf, gate, outcome), expect={gate})
    except StaleState as stale:
        return Decision(False, f"the issue moved while deciding: {stale}")
    log.info(
        "plan decision: issue=%s revision=%s approve=%s who=%s", issue.ref, revision, approve, who
    )
    return Decision(True, body.splitlines()[0])
