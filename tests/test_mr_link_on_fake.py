"""How every host finds an issue's merge request (``roles/mr_link.py``) on the in-memory
GitLab fake: by the MR marker in crewline's handoff note, never by a marker someone else
pasted, and whether the head QA passed is still the MR's head. The pure parsing is tested in
``tests/test_mr_link.py``; this runs it over the tracker's notes, trust filter included."""

from __future__ import annotations

from pathlib import Path

from forge.sink import seal
from roles.mr_link import issue_mr, issue_mr_and_notes, moved_since_qa, mr_marker, qa_passed_marker
from tests.support.fake_services import fake_services
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT


async def opened(tracker: FakeTracker, branch: str) -> int:
    await tracker.merges.ensure_branch(PROJECT, branch, "main")
    tracker.merges.push(PROJECT, branch)
    mr = await tracker.merges.ensure_mr(
        PROJECT, source_branch=branch, target_branch="main", title=branch, description=""
    )
    return mr.iid


async def handoff(tracker: FakeTracker, iid: int, mr_iid: int, branch: str) -> None:
    body = f"Handoff: !{mr_iid}\n\n{seal(mr_marker(mr_iid, branch))}"
    await tracker.upsert_note(PROJECT, iid, "dev-1:handoff", body)


async def test_the_mr_is_the_one_crewlines_handoff_names(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (_, tracker):
        issue = await tracker.create_issue(PROJECT, "Greeting", "", ["workflow::review-ready"])
        assert await issue_mr(tracker, PROJECT, issue.iid) is None  # no handoff yet
        other = await opened(tracker, "crewline/9-other")
        ours = await opened(tracker, "crewline/1-greeting")
        await handoff(tracker, issue.iid, ours, "crewline/1-greeting")
        found = await issue_mr(tracker, PROJECT, issue.iid)
        assert found is not None and found.iid == ours != other
        # Someone pastes a handoff marker pointing at another MR: it names nothing.
        forged = f"use this one {mr_marker(other, 'crewline/9-other')}"
        tracker.note_by("maintainer", PROJECT, issue.iid, forged)
        again = await issue_mr(tracker, PROJECT, issue.iid)
        assert again is not None and again.iid == ours


async def test_a_head_pushed_after_qa_passed_goes_back_to_qa(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (_, tracker):
        issue = await tracker.create_issue(PROJECT, "Greeting", "", ["workflow::merge-ready"])
        branch = "crewline/1-greeting"
        mr_iid = await opened(tracker, branch)
        await handoff(tracker, issue.iid, mr_iid, branch)
        mr, _ = await issue_mr_and_notes(tracker, PROJECT, issue.iid)
        assert mr is not None
        passed = f"QA passed.\n\n{seal(qa_passed_marker(mr.sha))}"
        await tracker.upsert_note(PROJECT, issue.iid, "qa-1:outcome", passed)
        mr, notes = await issue_mr_and_notes(tracker, PROJECT, issue.iid)
        assert mr is not None and moved_since_qa(notes, mr) is None
        head = tracker.merges.push(PROJECT, branch)  # someone pushes after the green pipeline
        mr, notes = await issue_mr_and_notes(tracker, PROJECT, issue.iid)
        assert mr is not None and mr.sha == head
        reason = moved_since_qa(notes, mr)
        assert reason is not None and f"moved to `{head[:10]}`" in reason
