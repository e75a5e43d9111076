"""End to end through review, QA and the merge gate, against the simulator's real
pipelines: AI findings fixed and resolved, a human's thread answered, review rounds
running out, and the merge decision (moved heads, GitLab refusing, the filer's own
approval, a merge by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forge.sim.app import RunningSim, running_sim
from forge.sim.core import SimConfig
from tests.engine_support import (
    fake_agent,
    file_block,
    file_goal,
    goal_text,
    note_bodies,
    reach,
)
from tests.review_merge_support import file_on, full_config, issue_mr, merging_runtime

GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
GREET_TEST = """import unittest

from app.greet import greet


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(greet("Ada"), "Hello, Ada!")
"""


def greet_goal(greet: str = GREET) -> str:
    return goal_text(
        "A greeting helper.",
        "Check: python3 -m unittest tests.test_greet",
        file_block("app/greet.py", greet),
        file_block("tests/test_greet.py", GREET_TEST),
    )


@pytest.fixture
def demo_sim(tmp_path: Path) -> Iterator[RunningSim]:
    with running_sim(SimConfig(state_dir=tmp_path / "sim", seed="demo")) as running:
        yield running


async def test_an_ai_finding_is_fixed_replied_to_and_resolved(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("docstring_reviewer")})
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "done"})

    mr = issue_mr(demo_sim, issue.iid)
    assert mr.state == "merged"
    threads = [d for d in mr.discussions.list(get_all=True) if not d.individual_note]
    assert len(threads) == 1
    first, *replies = threads[0].attributes["notes"]
    assert first["type"] == "DiffNote"
    assert (first["position"]["new_path"], first["position"]["new_line"]) == ("app/greet.py", 1)
    assert "`app/greet.py` has no module docstring" in first["body"]
    assert first["resolved"] is True
    assert len(replies) == 1 and replies[0]["body"].startswith("Fixed in `")
    assert "now opens with a module docstring" in replies[0]["body"]
    fixed_in = replies[0]["body"].split("`")[1]
    assert mr.sha.startswith(fixed_in)  # the fix is the head that was merged
    bodies = [note.body for note in mr.notes.list(get_all=True)]
    assert any(f"AI review of `{mr.sha[:10]}`: clean, nothing to change." in b for b in bodies)
    assert any("1 finding(s), opened as discussions" in b for b in bodies)
    merged = file_on(demo_sim, "app/greet.py")
    assert merged.startswith('"""Reviewed:') and "Hello, {name}!" in merged


async def test_a_humans_discussion_is_answered_in_code_and_resolved(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("docstring_reviewer")})
    config.roles.review.enabled = config.roles.qa.enabled = False
    documented = f'"""Greetings for the front page."""\n\n{GREET}'
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal(documented))
        await reach(runtime, {issue.iid: "review-ready"})
        mr = issue_mr(demo_sim, issue.iid)
        before = mr.sha
        asked = mr.discussions.create({"body": "app/greet.py: mark where the review happened."})
        config.roles.review.enabled = True
        await reach(runtime, {issue.iid: "qa-ready"})

    mr = issue_mr(demo_sim, issue.iid)
    thread = mr.discussions.get(asked.id)
    first, reply = thread.attributes["notes"]
    assert (first["author"]["username"], first["type"]) == ("maintainer", "DiscussionNote")
    assert first["resolved"] is True
    assert reply["author"]["username"] == "crewline-bot"
    assert reply["body"].startswith(f"Fixed in `{mr.sha[:10]}`")
    assert mr.sha != before
    assert f"# review thread {asked.id[:8]} addressed" in file_on(
        demo_sim, "app/greet.py", mr.source_branch
    )
    bodies = [note.body for note in mr.notes.list(get_all=True)]
    # The AI review found nothing, before the fix and after it.
    for head in (before, mr.sha):
        assert any(f"AI review of `{head[:10]}`: clean" in body for body in bodies)
    assert [d for d in mr.discussions.list(get_all=True) if not d.individual_note] == [thread]


async def test_review_rounds_running_out_block_with_the_open_threads_listed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("nitpicker")})
    config.roles.review_rounds = 1
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "blocked"})

    mr = issue_mr(demo_sim, issue.iid)
    diff_threads = [
        d
        for d in mr.discussions.list(get_all=True)
        if d.attributes["notes"][0]["type"] == "DiffNote"
    ]
    assert [d.attributes["notes"][0]["resolved"] for d in diff_threads] == [True, False]
    fixed, still_open = (d.attributes["notes"] for d in diff_threads)
    assert fixed[1]["body"].startswith("Fixed in `")
    assert len(still_open) == 1 and still_open[0]["body"].startswith("Nit ")
    open_id = diff_threads[1].id
    outcome = next(body for body in note_bodies(demo_sim, issue.iid) if "Open review" in body)
    assert "Open review discussions (1 review rounds did not close them)" in outcome
    assert f"- `{open_id[:8]}` @crewline-bot: {still_open[0]['body'].splitlines()[0]}" in outcome
    assert fixed[0]["body"].splitlines()[0] not in outcome
