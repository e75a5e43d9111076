"""Human decisions at the plan and merge gates: approve, or request changes with feedback.

Idempotent and revision-checked: a decision names the plan it is about (the plan note id);
a decision on an older plan, or a second decision on the same plan, changes nothing and
says why. The note crewline writes says who decided and through which surface.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from forge.client import ForgeError
from forge.gateway import Gateway, StaleState
from forge.merge_gateway import MergeGateway
from roles.mr_link import issue_mr_and_notes, moved_since_qa
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


FILER = re.compile(r"<!-- crewline:filer user=([\w.-]+) -->")


def filer_of(description: str, author: str) -> str:
    """Who filed the goal: the marker a surface wrote when filing for someone, else the
    issue's author."""
    match = FILER.search(description)
    return match.group(1) if match else author


def filer_marker(username: str) -> str:
    return f"<!-- crewline:filer user={username} -->"


async def decide_merge(
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
    approver: str | None = None,
    merger: MergeGateway | None = None,
    require_second_person: bool = True,
) -> Decision:
    """Apply a human's decision on merging ``project#iid`` at head ``revision``.

    ``approver`` is the decider's GitLab username (the filer may not approve their own
    goal's merge when ``require_second_person``). With a ``merger`` (the merge identity)
    crewline merges at exactly ``revision``; without one it records the approval and a human
    merges in GitLab (the janitor notices)."""
    if not approve and not feedback.strip():
        return Decision(False, "say what should change: feedback is required to reject a merge")
    lease = await leases.acquire(f"gate:{project}:{iid}", who, 60)
    if lease is None:
        return Decision(False, "another decision on this issue is being recorded; try again")
    try:
        return await _decide_merge(
            gateway, project, iid, revision, approve, who, via, feedback, approver, merger,
            require_second_person,
        )  # fmt: skip
    finally:
        await leases.release(lease)


async def _decide_merge(
    gateway: Gateway,
    project: str,
    iid: int,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    feedback: str,
    approver: str | None,
    merger: MergeGateway | None,
    require_second_person: bool,
) -> Decision:
    wf = gateway.workflow
    gate = wf.gate_state("merge").name
    key = f"decision:merge:{revision[:12]}"
    earlier = await gateway.find_note(project, iid, key)
    if earlier is not None:
        return Decision(
            False, f"already decided at {earlier.created_at}: {earlier.body.splitlines()[0]}"
        )
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    if state is None or state.name != gate:
        where = state.name if state else "no workflow state"
        return Decision(
            False, f"{issue.ref} is not waiting for a merge decision (it is at {where})"
        )
    mr, notes = await issue_mr_and_notes(gateway, project, iid)
    if mr is None:
        return Decision(False, f"{issue.ref} has no merge request")
    moved = moved_since_qa(notes, mr)
    if approve and moved is not None:
        # Never merge a head no pipeline passed: the approval is refused and QA runs again.
        if (await _move(gateway, project, iid, gate, Outcome.HEAD_MOVED, moved)).applied:
            await gateway.post_note(project, iid, moved)
        return Decision(False, f"stale: {moved}")
    if mr.sha != revision:
        return Decision(False, f"stale: !{mr.iid} is now at {mr.sha[:10]}, not {revision[:10]}")
    filer = filer_of(issue.description, issue.author)
    if approve and require_second_person and approver is not None and approver == filer:
        return Decision(False, f"@{approver} filed this goal and cannot approve its merge")
    if not approve:
        quoted = "\n".join(f"> {line}" for line in feedback.strip().splitlines())
        body = f"Merge changes requested by {who} via {via}.\n\n{FEEDBACK_HEADING}\n\n{quoted}"
        await gateway.upsert_note(project, iid, key, body)
        return await _move(gateway, project, iid, gate, Outcome.REJECTED, body)
    body = f"Merge of !{mr.iid} at `{revision[:10]}` approved by {who} via {via}."
    if merger is None:
        body += " Waiting for a human to merge it in GitLab (crewline has no merge identity)."
        await gateway.upsert_note(project, iid, key, body)
        return Decision(True, body)
    approval = await gateway.upsert_note(project, iid, key, body)
    try:
        await merger.merge(project, mr.iid, sha=revision)
    except ForgeError as error:
        if error.status not in (405, 406, 409, 422):
            raise
        moved = f"GitLab refused the merge ({error.status}: {error.message}); back to QA."
        # The approval took no effect: rewritten without its key, so approving the same head
        # once QA passes it again is not refused as "already decided".
        await gateway.edit_note(project, iid, approval.id, f"{body}\n\n{moved}")
        return await _move(gateway, project, iid, gate, Outcome.HEAD_MOVED, moved)
    await gateway.update_issue(project, iid, state_event="close")
    return await _move(gateway, project, iid, gate, Outcome.MERGED, f"{body} Merged.")


async def _move(
    gateway: Gateway, project: str, iid: int, gate: str, outcome: Outcome, message: str
) -> Decision:
    try:
        await gateway.transition(
            project, iid, next_state(gateway.workflow, gate, outcome), expect={gate}
        )
    except StaleState as stale:
        return Decision(False, f"the issue moved while deciding: {stale}")
    log.info("merge decision: issue=%s#%s outcome=%s", project, iid, outcome)
    return Decision(True, message.splitlines()[0])
