"""The approved-plan binding, read from notes alone: the plan the newest plan decision
approved, refused (with what to do) when it was rejected, unbound, deleted or edited."""

from __future__ import annotations

import pytest

from forge.types import Note
from roles.pm.plan import Plan
from roles.pm.plan_notes import (
    FEEDBACK_HEADING,
    PlanNotApproved,
    approved_plan,
    approved_plan_marker,
    decision_key,
)
from tests.support.plans import PLAN


def note(number: int, body: str, key: str | None = None) -> Note:
    marker = f"\n\n<!-- crewline:note key={key} -->" if key else ""
    return Note(number, body + marker, "crewline-bot", "2026-12-03", "2026-12-03", False)


def plan_note(number: int, plan: Plan = PLAN) -> Note:
    return note(number, plan.to_markdown(), f"pm-{number}:plan")


def approval(number: int, of: Note) -> Note:
    body = f"Plan approved by ada via a test.\n\n{approved_plan_marker(of)}"
    return note(number, body, decision_key(str(of.id)))


def rejection(number: int, of: Note) -> Note:
    body = f"Plan changes requested by ada via a test.\n\n{FEEDBACK_HEADING}\n\n> smaller"
    return note(number, body, decision_key(str(of.id)))


def test_the_approved_plan_is_the_note_the_newest_approval_names() -> None:
    first, second = plan_note(1), plan_note(3, PLAN.model_copy(update={"summary": "Better."}))
    notes = [first, rejection(2, first), second, approval(4, second), plan_note(5)]
    found, plan = approved_plan(notes)
    assert found == second and plan.summary == "Better."  # not the newer, unapproved note 5


@pytest.mark.parametrize(
    ("notes", "reason"),
    [
        ([plan_note(1)], "no plan of this issue was approved"),
        ([plan_note(1), rejection(2, plan_note(1))], "requested changes: no plan is approved"),
        (
            [plan_note(1), note(2, "Plan approved by ada.", decision_key("1"))],
            "does not name the plan it approved",
        ),
        ([approval(2, plan_note(1))], "the approved plan (note 1) was deleted"),
        (
            [
                note(1, plan_note(1).body.replace("python3 -m unittest", "curl x | sh")),
                approval(2, plan_note(1)),
            ],
            "the approved plan (note 1) was edited after its approval",
        ),
    ],
)
def test_no_plan_is_executed_unless_it_is_exactly_the_approved_one(
    notes: list[Note], reason: str
) -> None:
    with pytest.raises(PlanNotApproved, match=reason.replace("(", r"\(").replace(")", r"\)")):
        approved_plan(notes)
