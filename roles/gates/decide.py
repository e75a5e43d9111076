"""Human decisions at the plan and merge gates: approve, or request changes with feedback.

Revision-checked: a decision names what it is about (the plan note id, the MR head sha); one
on an older revision changes nothing and says why. Its note says who decided, and where.

Applied exactly once (docs/decisions/0014): the decision note, keyed by the revision, is the
record, and its existence means "apply this decision if the issue still waits at the gate
for that revision". A process that dies between the note and the transition (or the merge)
leaves the note behind; whoever comes next - the same click again, the restarted worker, the
janitor of any host - finds it and completes the step. The transition expects the gate
state, so the decision moves the issue once whoever completes it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from forge.client import ForgeError
from forge.gateway import StaleState, note_marker
from forge.sink import seal
from forge.types import Issue, MergeRequest, Note
from roles.gates.desk_rules import second_person_refusal
from roles.mr_link import issue_mr_and_notes, moved_since_qa
from roles.pm.plan_notes import FEEDBACK_HEADING, approved_plan_marker, decision_key, latest_plan
from roles.ports import IssueTracker, MergeRequests
from storage import LeaseStore
from workflow import Outcome, State, next_state, read_state

log = logging.getLogger(__name__)

GATE_LEASE_SECONDS = 60
HUMAN_MERGES = "Waiting for a human to merge it in GitLab (crewline has no merge identity)."
# GitLab's answers that say the MR cannot be merged as it is (draft, conflicts, a rebase
# needed, the head moved): QA looks at it again. Any other refusal (401, 403 missing
# approvals, 5xx) leaves the gate open for a later approval.
_NOT_MERGEABLE = (405, 406, 409, 422)


@dataclass(frozen=True)
class Decision:
    applied: bool
    message: str
    # Nothing was applied and the issue still waits at the gate for this revision: the
    # surface must say so and the gate be asked again (a busy lease, GitLab refusing a merge).
    pending: bool = False


class GateNotDecided(Exception):
    """A desk could not apply a decision and the gate still waits: ask it again later."""


def merge_decision_key(revision: str) -> str:
    return f"decision:merge:{revision[:12]}"


def head_moved_key(mr: MergeRequest) -> str:
    """One note per fact "the head moved to this sha after QA", whoever notices it."""
    return f"head-moved:{mr.iid}:{mr.sha[:12]}"


_LOCAL: weakref.WeakKeyDictionary[LeaseStore, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def gate_lease(
    leases: LeaseStore, project: str, iid: int, worker: str
) -> AsyncIterator[bool]:
    """Hold the gate of ``project#iid`` (True) or learn that another process holds it.

    The lease belongs to the worker id, so a restarted worker takes back what its killed
    process held instead of being refused for a minute; a lock serialises the decisions
    of this process (they share the worker id)."""
    key = f"gate:{project}:{iid}"
    lock = _LOCAL.setdefault(leases, {}).setdefault(key, asyncio.Lock())
    async with lock:
        lease = await leases.acquire(key, worker, GATE_LEASE_SECONDS, retake=True)
        if lease is None:
            yield False
            return
        try:
            yield True
        finally:
            await leases.release(lease)


GateKind = Literal["plan", "merge"]
_BUSY = Decision(False, "another decision on this issue is being recorded; try again", True)


async def _leased_decision(
    leases: LeaseStore,
    project: str,
    iid: int,
    worker: str,
    gate: str,
    refusing: bool,
    feedback: str,
    decide: Callable[[], Awaitable[Decision]],
) -> Decision:
    """Run ``decide`` holding the issue's gate lease, once a refusal says what should change."""
    if refusing and not feedback.strip():
        return Decision(False, f"say what should change: feedback is required to reject a {gate}")
    async with gate_lease(leases, project, iid, worker) as held:
        if not held:
            return _BUSY
        return await decide()


async def _issue_state(gateway: IssueTracker, project: str, iid: int) -> tuple[Issue, State | None]:
    """The issue and its workflow state (None: it has none)."""
    issue = await gateway.get_issue(project, iid)
    return issue, read_state(gateway.workflow, issue.labels).state


def _not_at_gate(issue: Issue, state: State | None, gate: str) -> Decision:
    where = state.name if state else "no workflow state"
    return Decision(False, f"{issue.ref} is not waiting for a {gate} decision (it is at {where})")


def _changes_requested(gate: str, who: str, via: str, feedback: str) -> str:
    quoted = "\n".join(f"> {line}" for line in feedback.strip().splitlines())
    return f"{gate.capitalize()} changes requested by {who} via {via}.\n\n{FEEDBACK_HEADING}\n\n{quoted}"


async def decide_plan(
    gateway: IssueTracker,
    leases: LeaseStore,
    project: str,
    iid: int,
    *,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    worker: str,
    feedback: str = "",
) -> Decision:
    """Apply a human's decision on the plan ``revision`` of ``project#iid`` (or complete
    the recorded decision on it); ``worker`` is this host's worker id."""
    return await _leased_decision(
        leases, project, iid, worker, "plan", not approve, feedback,
        lambda: _decide(gateway, project, iid, revision, approve, who, via, feedback),
    )  # fmt: skip


async def _decide(
    gateway: IssueTracker,
    project: str,
    iid: int,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    feedback: str,
) -> Decision:
    gate = gateway.workflow.gate_state("plan").name
    notes = await gateway.notes(project, iid)
    issue, state = await _issue_state(gateway, project, iid)
    at_gate = state is not None and state.name == gate
    current = latest_plan(notes)
    newest = current is not None and str(current[0].id) == revision
    # Keyed notes are looked up through the gateway, which decides whose notes count.
    earlier = await gateway.find_note(project, iid, decision_key(revision), known=notes)
    if earlier is not None:
        if at_gate and newest:  # recorded, and the process that recorded it did not finish
            return await apply_plan_decision(gateway, project, iid, earlier)
        return _already(earlier)
    if not at_gate:
        return _not_at_gate(issue, state, "plan")
    if current is None or not newest:
        return Decision(False, f"stale: plan {revision} is not the newest plan of {issue.ref}")
    if approve:
        body = f"Plan approved by {who} via {via}.\n\n{seal(approved_plan_marker(current[0]))}"
    else:
        body = _changes_requested("plan", who, via, feedback)
    note = await gateway.upsert_note(project, iid, decision_key(revision), body, known=notes)
    return await apply_plan_decision(gateway, project, iid, note)


async def apply_plan_decision(
    gateway: IssueTracker, project: str, iid: int, note: Note
) -> Decision:
    """Move the issue on from the plan gate as the decision ``note`` says."""
    outcome = Outcome.REJECTED if FEEDBACK_HEADING in note.body else Outcome.APPROVED
    return await _move(gateway, project, iid, outcome, note.body, gate="plan")


def _already(earlier: Note) -> Decision:
    return Decision(
        False, f"already decided at {earlier.created_at}: {earlier.body.splitlines()[0]}"
    )


FILER = re.compile(r"<!-- crewline:filer user=([\w.-]+) -->")


FILER_KEY = "filer"


def filer_of(description: str, author: str, notes: Iterable[Note] = ()) -> str:
    """Who filed the goal: the filer note a surface posted when filing for someone (a note
    only its author edits), else the marker in the description (which counts only while
    nobody else edited it: forge/trust.py), else the issue's author."""
    for note in notes:
        found = FILER.search(note.body) if note.by_crewline else None
        if found and note_marker(FILER_KEY) in note.body:
            return found.group(1)
    match = FILER.search(description)
    return match.group(1) if match else author


def issue_filer(issue: Issue, notes: Iterable[Note] = ()) -> str:
    """Who filed the goal ``issue`` is: the person a surface filed it for, not the bot that
    is GitLab's author then. Gate cards, the second-person rule and the filer's messages all
    ask this one question. Trusted because the gateway's trust filter leaves markers only in
    text crewline wrote (``forge/trust.py``): a stranger's description never names a filer.
    Given the issue's notes, the filer note a surface posted counts first (it survives a
    description edited by someone else)."""
    return filer_of(issue.description, issue.author, notes)


def filer_marker(username: str) -> str:
    return f"<!-- crewline:filer user={username} -->"


async def decide_merge(
    gateway: IssueTracker,
    leases: LeaseStore,
    project: str,
    iid: int,
    *,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    worker: str,
    feedback: str = "",
    approver: str | None = None,
    merger: MergeRequests | None = None,
    require_second_person: bool = True,
) -> Decision:
    """Apply a human's decision on merging ``project#iid`` at head ``revision``.

    ``approver`` is the decider's GitLab username (the filer may not approve their own
    goal's merge when ``require_second_person``). With a ``merger`` (the merge identity)
    crewline merges at exactly ``revision``; without one it records the approval and a human
    merges in GitLab (the janitor notices)."""
    return await _leased_decision(
        leases, project, iid, worker, "merge", not approve, feedback,
        lambda: _decide_merge(
            gateway, project, iid, revision, approve, who, via, feedback, approver, merger,
            require_second_person,
        ),
    )  # fmt: skip


async def _decide_merge(
    gateway: IssueTracker,
    project: str,
    iid: int,
    revision: str,
    approve: bool,
    who: str,
    via: str,
    feedback: str,
    approver: str | None,
    merger: MergeRequests | None,
    require_second_person: bool,
) -> Decision:
    gate = gateway.workflow.gate_state("merge").name
    issue, state = await _issue_state(gateway, project, iid)
    at_gate = state is not None and state.name == gate
    mr, notes = await issue_mr_and_notes(gateway, project, iid)
    earlier = await gateway.find_note(project, iid, merge_decision_key(revision), known=notes)
    if earlier is not None:
        # An approval waiting for a human to merge in GitLab is complete as recorded.
        unfinished = HUMAN_MERGES not in earlier.body
        if unfinished and at_gate and mr is not None and mr.sha == revision:
            return await apply_merge_decision(
                gateway, project, iid, mr, earlier, merger, known=issue
            )
        return _already(earlier)
    if not at_gate:
        return _not_at_gate(issue, state, "merge")
    if mr is None:
        return Decision(False, f"{issue.ref} has no merge request")
    moved = moved_since_qa(notes, mr)
    if approve and moved is not None:
        # Never merge a head no pipeline passed: the approval is refused and QA runs again.
        if (await _move(gateway, project, iid, Outcome.HEAD_MOVED, moved)).applied:
            await gateway.upsert_note(project, iid, head_moved_key(mr), moved)
        return Decision(False, f"stale: {moved}")
    if mr.sha != revision:
        return Decision(False, f"stale: !{mr.iid} is now at {mr.sha[:10]}, not {revision[:10]}")
    filer = issue_filer(issue, notes)
    refused = second_person_refusal(filer, approver, require_second_person) if approve else None
    if refused is not None:
        return Decision(False, refused)
    if not approve:
        body = _changes_requested("merge", who, via, feedback)
    else:
        body = f"Merge of !{mr.iid} at `{revision[:10]}` approved by {who} via {via}."
        if merger is None:
            body += f" {HUMAN_MERGES}"
    note = await gateway.upsert_note(project, iid, merge_decision_key(revision), body, known=notes)
    return await apply_merge_decision(gateway, project, iid, mr, note, merger, known=issue)


async def apply_merge_decision(
    gateway: IssueTracker,
    project: str,
    iid: int,
    mr: MergeRequest,
    note: Note,
    merger: MergeRequests | None,
    *,
    known: Issue | None = None,
) -> Decision:
    """Complete the decision ``note`` records on merging ``mr`` at its head: back to the
    developer, or merge and move to done. An approval that waits for a human to merge is
    complete as recorded (the janitor notices the merge). ``known``: the issue as read at the
    gate, where a merged one belongs at done whatever moved since (decision 0048)."""
    first = note.body.splitlines()[0]
    if FEEDBACK_HEADING in note.body:
        return await _move(gateway, project, iid, Outcome.REJECTED, first)
    if mr.state != "merged":
        if merger is None or HUMAN_MERGES in note.body:
            return Decision(True, first)
        try:
            await merger.merge(project, mr.iid, sha=mr.sha)
        except ForgeError as error:
            return await _merge_refused(gateway, project, iid, mr, note, error)
    merged = f"{first} Merged."
    if known is not None:  # one update closes it and moves it to done
        return await _move(gateway, project, iid, Outcome.MERGED, merged, known=known, close=True)
    # The close's answer says where the issue is: the move reads nothing first (0041).
    closed = await gateway.update_issue(project, iid, state_event="close")
    return await _move(gateway, project, iid, Outcome.MERGED, merged, known=closed)


async def _merge_refused(
    gateway: IssueTracker,
    project: str,
    iid: int,
    mr: MergeRequest,
    approval: Note,
    error: ForgeError,
) -> Decision:
    """GitLab did not merge: unless it did after all (a lost answer), the approval is taken
    back (deleted: it must not be completed later) and the reason stays in a note."""
    approved = approval.body.splitlines()[0]
    current = await gateway.merges.get_mr(project, mr.iid)
    if current.state == "merged":
        await gateway.update_issue(project, iid, state_event="close")
        return await _move(gateway, project, iid, Outcome.MERGED, f"{approved} Merged.")
    status = error.status if error.status is not None else "no answer"
    refused = f"GitLab refused the merge ({status}: {error.message})"
    back = error.status in _NOT_MERGEABLE
    stays = "the merge gate stays open: fix that in GitLab, then approve again"
    reason = f"{refused}; {'back to QA' if back else stays}."
    await gateway.upsert_note(
        project, iid, f"merge-refused:{mr.sha[:12]}:{status}", f"{approved}\n\n{reason}"
    )
    await gateway.delete_note(project, iid, approval.id)
    log.warning("merge refused: issue=%s#%s mr=!%s: %s", project, iid, mr.iid, reason)
    if back:
        return await _move(gateway, project, iid, Outcome.HEAD_MOVED, reason)
    return Decision(False, reason, pending=True)


async def _move(
    gateway: IssueTracker,
    project: str,
    iid: int,
    outcome: Outcome,
    message: str,
    gate: GateKind = "merge",
    *,
    known: Issue | None = None,
    close: bool = False,
) -> Decision:
    """Move the issue on from the ``gate`` by ``outcome``, unless it moved meanwhile;
    ``known``: the issue as last read (no read first); ``close``: the update closes it."""
    state = gateway.workflow.gate_state(gate).name
    target = next_state(gateway.workflow, state, outcome)
    try:
        await gateway.transition(project, iid, target, expect={state}, known=known, close=close)
    except StaleState as stale:
        return Decision(False, f"the issue moved while deciding: {stale}")
    log.info("%s decision applied: issue=%s#%s outcome=%s", gate, project, iid, outcome)
    return Decision(True, message.splitlines()[0])
