"""Plans and plan decisions as notes on the issue: what every host reads back.

An approval binds the plan it approves: the decision note names the plan note's id and the
SHA-256 of its text. The developer, review and QA roles execute only that plan, and refuse
(blocked, with the reason) when it was edited or deleted after the approval: the acceptance
checks they run and the paths they may change never come from anywhere else.
"""

from __future__ import annotations

import hashlib
import re

from forge.types import Note
from roles.pm.plan import Plan, PlanError, parse_plan
from roles.ports import IssueTracker

_PLAN_KEY = re.compile(r"<!-- crewline:note key=pm-\d+:plan -->")
_DECISION_KEY = re.compile(r"<!-- crewline:note key=decision:plan:\d+ -->")
_APPROVED = re.compile(r"<!-- crewline:approved-plan note=(\d+) sha256=([0-9a-f]{64}) -->")
FEEDBACK_HEADING = "Changes requested:"


class PlanNotApproved(Exception):
    """No plan may be executed; the message says why and what a human can do."""


def decision_key(revision: str) -> str:
    return f"decision:plan:{revision}"


def latest_plan(notes: list[Note]) -> tuple[Note, Plan] | None:
    """The newest plan note and its plan (notes come lowest id first)."""
    for note in reversed(notes):
        if _PLAN_KEY.search(note.body):
            try:
                return note, parse_plan(note.body)
            except PlanError:
                continue  # edited by hand into something unreadable: an older plan may serve
    return None


def latest_feedback(notes: list[Note]) -> str:
    """The human's words on the newest rejected plan, or "" when there is none."""
    for note in reversed(notes):
        if _DECISION_KEY.search(note.body) and FEEDBACK_HEADING in note.body:
            text = _DECISION_KEY.sub("", note.body.split(FEEDBACK_HEADING, 1)[1]).strip()
            return "\n".join(line.removeprefix(">").strip() for line in text.splitlines())
        if _DECISION_KEY.search(note.body):
            return ""  # the newest decision approved: no feedback pending
    return ""


async def load_plan(gateway: IssueTracker, project: str, iid: int) -> tuple[Note, Plan] | None:
    return latest_plan(await gateway.notes(project, iid))


def plan_digest(note: Note) -> str:
    """The SHA-256 of the plan note's text as GitLab stores it."""
    return hashlib.sha256(note.body.encode("utf-8")).hexdigest()


def approved_plan_marker(note: Note) -> str:
    """The hidden binding an approval carries: which plan note, and its text's digest."""
    return f"<!-- crewline:approved-plan note={note.id} sha256={plan_digest(note)} -->"


def approved_plan(notes: list[Note]) -> tuple[Note, Plan]:
    """The plan the newest plan decision approved, exactly as it was approved.

    Raises :class:`PlanNotApproved` when the newest decision requested changes, names no
    plan, or names a plan note that is gone or was edited after the approval."""
    decision = next((note for note in reversed(notes) if _DECISION_KEY.search(note.body)), None)
    if decision is None:
        raise PlanNotApproved("no plan of this issue was approved at the plan gate")
    if FEEDBACK_HEADING in decision.body:
        raise PlanNotApproved("the newest plan decision requested changes: no plan is approved")
    bound = _APPROVED.search(decision.body)
    if bound is None:
        raise PlanNotApproved(
            "the plan approval does not name the plan it approved (an older crewline wrote "
            "it): send the issue back to the PM and approve its plan again"
        )
    note_id, digest = int(bound.group(1)), bound.group(2)
    plan_note = next((note for note in notes if note.id == note_id), None)
    if plan_note is None:
        raise PlanNotApproved(
            f"the approved plan (note {note_id}) was deleted after its approval: send the "
            "issue back to the PM for a new plan"
        )
    if plan_digest(plan_note) != digest:
        raise PlanNotApproved(
            f"the approved plan (note {note_id}) was edited after its approval, so it is not "
            "the plan a human approved: restore it, or send the issue back to the PM and "
            "approve a new plan"
        )
    try:
        return plan_note, parse_plan(plan_note.body)
    except PlanError as error:  # a digest match makes this unreachable unless the format changed
        raise PlanNotApproved(
            f"the approved plan (note {note_id}) cannot be read: {error}"
        ) from None


async def load_approved_plan(gateway: IssueTracker, project: str, iid: int) -> tuple[Note, Plan]:
    return approved_plan(await gateway.notes(project, iid))
