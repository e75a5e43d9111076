"""Plans and plan decisions as notes on the issue: what every host reads back."""

from __future__ import annotations

import re

from forge.gateway import Gateway
from forge.types import Note
from roles.plan import Plan, PlanError, parse_plan

_PLAN_KEY = re.compile(r"<!-- crewline:note key=pm-\d+:plan -->")
_DECISION_KEY = re.compile(r"<!-- crewline:note key=decision:plan:\d+ -->")
FEEDBACK_HEADING = "Changes requested:"


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


async def load_plan(gateway: Gateway, project: str, iid: int) -> tuple[Note, Plan] | None:
    return latest_plan(await gateway.notes(project, iid))
