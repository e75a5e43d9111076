"""QA rebases an MR whose target moved, validates once, and sends a failure back to the
developer with the output: QA never fixes the work itself."""

from __future__ import annotations

from pathlib import Path

from bot.demo_goals import GOALS
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    file_goal,
    note_bodies,
    reach,
    root,
    runtime_for,
)


def move_main(sim: RunningSim) -> None:
    root(sim).projects.get(PROJECT).commits.create(
        {
            "branch": "main",
            "commit_message": "Someone else's change",
            "actions": [{"action": "create", "file_path": "NOTES.md", "content": "moved\n"}],
        }
    )


async def test_a_failure_after_the_rebase_goes_back_to_the_developer(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    # Goal 4's first attempt passes in the developer's worktree (its fixture is git-ignored
    # but present there) and fails in any clean checkout, such as the one QA rebases in.
    goal = GOALS[3]
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        issue = await file_goal(runtime, goal.title, goal.description)
        await reach(runtime, {issue.iid: "review-ready"})
    move_main(demo_sim)  # before QA looks: the draft MR now needs a rebase

    config = configure(demo_sim, tmp_path, through_qa=True)
    async with runtime_for(demo_sim, config) as (runtime, _):
        await reach(runtime, {issue.iid: "merge-ready"}, limit=120)
        runs = runtime.storage.runs
        qa_first = await runs.find(PROJECT, issue.iid, "qa", 1)
        dev_last = await runs.latest(PROJECT, issue.iid, "dev")
    assert dev_last is not None and dev_last.attempt == 2  # the developer fixed it, not QA
    assert qa_first is not None and qa_first.status == "failed"
    sent_back = [b for b in note_bodies(demo_sim, issue.iid) if "After the rebase onto" in b]
    assert len(sent_back) == 1, sent_back
    assert "validation fails; back to the developer" in sent_back[0]
    assert "test_sample" in sent_back[0]  # the failing output goes with it
    qa_turns = list((tmp_path / "runs" / PROJECT.replace("/", "_") / str(issue.iid)).glob("qa-*/*"))
    assert not [t for t in qa_turns if t.name.endswith("-fix.log")], qa_turns
