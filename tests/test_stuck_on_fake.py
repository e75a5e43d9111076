"""Stuck work (``roles/stuck.py``) on the in-memory GitLab fake, whose clock a test moves:
what counts as stuck (terminal states always, others past their threshold, done never),
since when (the label event that put the issue in its state, not its last update), oldest
first, and label events read again only for an issue that changed. The janitor's and the
engine's runs of ``tests/test_engine_questions.py`` keep the end-to-end behaviour on the
simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from roles.stuck import stuck_items
from tests.support.fake_services import fake_services
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT

HOUR = 3600.0
# The fake's clock starts at 12:00; two hours and a half of writes later is 14:30.
NOW = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def event_reads(tracker: FakeTracker) -> int:
    return sum(what == "gitlab.issue.label_events" for _, what, _, _ in tracker.audit.reads)


async def test_terminal_states_always_others_past_their_threshold_done_never(
    tmp_path: Path,
) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        blocked = await tracker.create_issue(PROJECT, "Blocked", "", ["workflow::blocked"])
        await tracker.create_issue(PROJECT, "Done", "", ["workflow::done"])
        tracker.state.advance(HOUR)
        waiting = await tracker.create_issue(PROJECT, "Waiting", "", ["workflow::pm-ready"])
        items = await stuck_items(services, stuck_after=2 * HOUR, now=NOW)
        assert [(item.iid, item.state) for item in items] == [(blocked.iid, "blocked")]
        assert "retry" in items[0].action and items[0].reason.startswith("blocked: ")
        items = await stuck_items(services, stuck_after=HOUR, now=NOW)  # oldest first
        assert [(item.iid, item.state) for item in items] == [
            (blocked.iid, "blocked"), (waiting.iid, "pm-ready"),
        ]  # fmt: skip
        assert items[1].reason == "no transition for 1.5 h in pm-ready"
        assert items[1].hours == 1.5 and items[1].since.startswith("2026-12-04T13:00:00")
        lenient = await stuck_items(
            services, stuck_after=HOUR, by_state={"pm-ready": 2 * HOUR}, now=NOW
        )
        assert [item.state for item in lenient] == ["blocked"]


async def test_since_is_when_the_label_came_not_the_last_update(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        issue = await tracker.create_issue(PROJECT, "Waiting", "", ["workflow::pm-ready"])
        tracker.state.advance(2 * HOUR)
        await tracker.post_note(PROJECT, issue.iid, "a comment moves updated_at, not the state")
        [item] = await stuck_items(services, stuck_after=HOUR, now=NOW)
        assert item.since.startswith("2026-12-04T12:00:00") and item.hours == 2.5
        await tracker.transition(PROJECT, issue.iid, "pm-running")  # at 14:00
        assert await stuck_items(services, stuck_after=HOUR, now=NOW) == []


async def test_label_events_are_read_again_only_for_an_issue_that_changed(
    tmp_path: Path,
) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        waiting = await tracker.create_issue(PROJECT, "Waiting", "", ["workflow::pm-ready"])
        other = await tracker.create_issue(PROJECT, "Other", "", ["workflow::pm-ready"])
        first = await stuck_items(services, stuck_after=0.001, now=NOW)
        assert [item.iid for item in first] == [waiting.iid, other.iid]
        assert event_reads(tracker) == 2
        again = await stuck_items(services, stuck_after=0.001, now=NOW)
        assert [(i.iid, i.since) for i in again] == [(i.iid, i.since) for i in first]
        assert event_reads(tracker) == 2
        await tracker.transition(PROJECT, other.iid, "blocked")
        moved = await stuck_items(services, stuck_after=0.001, now=NOW)
        assert {(item.iid, item.state) for item in moved} == {
            (waiting.iid, "pm-ready"), (other.iid, "blocked"),
        }  # fmt: skip
        assert event_reads(tracker) == 3  # only the issue that moved
