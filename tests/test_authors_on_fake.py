"""Whose words count (``roles/authors.py``) on the in-memory GitLab fake: which issues are
goals by their filer's access or by who put them at the entry state, the one note that says
why one is left alone, and whose comments reach an agent. The engine runs of
``tests/test_authors.py`` keep the end-to-end behaviour on the simulator; a failure here
points at the rule itself."""

from __future__ import annotations

from pathlib import Path

from forge.access import DEVELOPER, GUEST, REPORTER
from forge.markers import note_marker
from roles.authors import FILER_ACCESS_KEY, FilerCheck, heard_authors
from roles.context import Services
from tests.support.fake_services import fake_services
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT

ENTRY = "workflow::pm-ready"


def people(tracker: FakeTracker) -> None:
    for name, level in (("gina", GUEST), ("rita", REPORTER), ("dave", DEVELOPER)):
        tracker.state.add_member(PROJECT, name, level)


async def refusal(services: Services, iid: int, check: FilerCheck | None = None) -> str | None:
    issue = await services.gateway.get_issue(PROJECT, iid)
    return await (check or FilerCheck()).refusal(services, issue)


async def test_a_goal_needs_a_filer_with_enough_access(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        people(tracker)
        by_rita = tracker.issue_by("rita", PROJECT, "Run my thing", "please", ENTRY)
        reason = await refusal(services, by_rita)
        assert reason is not None and "leaves this issue alone" in reason
        assert "@rita (who filed it) has Reporter access" in reason
        assert "Developer access or more" in reason and f"`{ENTRY}`" in reason
        by_dave = tracker.issue_by("dave", PROJECT, "Mine", "", ENTRY)
        assert await refusal(services, by_dave) is None


async def test_a_developer_re_applying_the_entry_label_makes_it_a_goal(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        people(tracker)
        iid = tracker.issue_by("rita", PROJECT, "Run my thing", "", ENTRY)
        check = FilerCheck()
        assert await refusal(services, iid, check) is not None
        tracker.relabel_by("dave", PROJECT, iid, add=[], remove=[ENTRY])
        tracker.relabel_by("dave", PROJECT, iid, add=[ENTRY])
        assert await refusal(services, iid, check) is None  # the issue changed: asked again


async def test_a_goal_crewline_filed_counts_only_as_whoever_put_it_at_the_entry(
    tmp_path: Path,
) -> None:
    """crewline's own issues (the control issue, flaky-test issues) must not become goals
    because a Reporter added the entry label."""
    async with fake_services(tmp_path) as (services, tracker):
        people(tracker)
        filed = await tracker.create_issue(PROJECT, "crewline's own", "", [ENTRY])
        assert await refusal(services, filed.iid) is None  # crewline put it there
        other = await tracker.create_issue(PROJECT, "crewline's control issue", "", [])
        tracker.relabel_by("rita", PROJECT, other.iid, add=[ENTRY])
        reason = await refusal(services, other.iid)
        assert reason is not None
        assert f"crewline filed it, and @rita (who added `{ENTRY}`) has Reporter access" in reason


async def test_the_refusal_is_told_once_in_one_keyed_note(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        people(tracker)
        iid = tracker.issue_by("rita", PROJECT, "Run my thing", "", ENTRY)
        reason = await refusal(services, iid)
        assert reason is not None
        assert await tracker.notes(PROJECT, iid) == []  # asking writes nothing
        for check in (FilerCheck(), FilerCheck()):  # two passes, or two hosts
            await check.tell(services, await tracker.get_issue(PROJECT, iid), reason)
        told = [
            note
            for note in await tracker.notes(PROJECT, iid)
            if note_marker(FILER_ACCESS_KEY) in note.body
        ]
        assert len(told) == 1 and told[0].body.startswith(reason)


async def test_guests_comments_reach_no_agent_unless_the_project_opts_in(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        people(tracker)
        issue = await tracker.create_issue(PROJECT, "Talk", "", [])
        for name in ("gina", "rita", "dave"):
            tracker.note_by(name, PROJECT, issue.iid, f"{name} says hi")
        tracker.note_by("mallory", PROJECT, issue.iid, "not a member at all")
        notes = await tracker.notes(PROJECT, issue.iid)
        project = services.projects[PROJECT]
        assert await heard_authors(services, project, notes) == {"rita", "dave"}
        opted = project.model_copy(update={"agents_hear_guests": True})
        assert await heard_authors(services, opted, notes) == {"gina", "rita", "dave", "mallory"}
