"""What hosts read back from the issue's notes: the QA-passed head, feedback for the next
developer attempt, and event text without the hidden markers."""

from __future__ import annotations

from forge.types import MergeRequest, Note
from roles.mr_link import moved_since_qa, qa_passed_head, qa_passed_marker, work_feedback
from roles.notify import for_humans

OLD, NEW = "a" * 40, "b" * 40


def note(number: int, body: str, key: str | None = None) -> Note:
    marker = f"\n\n<!-- crewline:note key={key} -->" if key else ""
    return Note(number, body + marker, "crewline-bot", "2026-12-01", "2026-12-01", False)


def mr(sha: str) -> MergeRequest:
    return MergeRequest("demo/app", 3, 30, "T", "", "opened", False, "b", "main", sha, "", "u")


def test_the_newest_qa_pass_names_the_head_that_may_be_merged() -> None:
    notes = [
        note(1, f"QA passed.\n\n{qa_passed_marker(OLD)}", "qa-1:outcome"),
        note(2, "a human comment"),
        note(3, f"QA passed.\n\n{qa_passed_marker(NEW)}", "qa-2:outcome"),
    ]
    assert qa_passed_head(notes) == NEW
    assert qa_passed_head(notes[:2]) == OLD
    assert qa_passed_head([note(1, "no QA yet")]) is None


def test_a_head_is_moved_only_when_qa_passed_another_one() -> None:
    passed_old = [note(1, qa_passed_marker(OLD), "qa-1:outcome")]
    assert moved_since_qa(passed_old, mr(OLD)) is None
    assert moved_since_qa([], mr(NEW)) is None  # QA never ran (the role is off)
    reason = moved_since_qa(passed_old, mr(NEW))
    assert reason == (
        "!3 moved to `bbbbbbbbbb` after QA passed `aaaaaaaaaa`: the new head needs its own "
        "pipeline, back to QA."
    )


def test_a_qa_pass_is_not_feedback_for_the_next_developer_attempt() -> None:
    notes = [
        note(1, "handoff", "dev-1:handoff"),
        note(2, f"QA passed: head `aaaa`.\n\n{qa_passed_marker(OLD)}", "qa-1:outcome"),
        note(3, "Merge changes requested by @bob: rename it.", "decision:merge:aaaaaaaaaaaa"),
    ]
    feedback = work_feedback(notes)
    assert "rename it" in feedback and "QA passed" not in feedback


def test_events_for_humans_carry_no_hidden_markers() -> None:
    text = f"QA passed: head `aaaa`.\n\n{qa_passed_marker(OLD)}\n<!--\nmulti\nline -->"
    assert for_humans(text) == "QA passed: head `aaaa`."
