"""What the in-memory GitLab fakes leave out says so: a call they do not implement raises
``NotImplementedError`` naming it, never a wrong answer or an ``AttributeError`` on
``None`` deep inside python-gitlab code."""

from __future__ import annotations

import pytest

from forge.labels import sync_labels
from tests.support.fake_state import FakeGitLab
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT


def tracker() -> FakeTracker:
    state = FakeGitLab()
    state.add_project(PROJECT)
    return FakeTracker(state)


async def test_ci_history_and_awards_are_out_of_scope_by_name() -> None:
    fake = tracker()
    with pytest.raises(NotImplementedError, match=r"FakeTracker\.ci"):
        _ = fake.ci
    with pytest.raises(NotImplementedError, match=r"FakeTracker\.note_awards"):
        await fake.note_awards(PROJECT, 1, 1)


async def test_a_helper_calling_python_gitlab_through_calls_is_named() -> None:
    with pytest.raises(NotImplementedError, match=r"does not implement label\.list"):
        await sync_labels(tracker(), PROJECT)
