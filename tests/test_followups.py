"""Follow-up prompts stand alone for an agent that keeps no session (like aider): the fix turn
after NO-GO carries the issue, the approved plan, the diff so far and what failed."""

from __future__ import annotations

from pathlib import Path

from bot.demo_goals import GOALS
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    agent_log,
    configure_agent,
    file_goal,
    reach,
    runtime_for,
)


async def test_a_fix_turn_without_a_session_gets_issue_plan_diff_and_failure(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure_agent(demo_sim, tmp_path, "dev", "forgetful")
    goal = GOALS[1]  # its first attempt fails validation
    async with runtime_for(demo_sim, config) as (runtime, _log):
        issue = await file_goal(runtime, goal.title, goal.description)
        await reach(runtime, {issue.iid: "review-ready"})
    calls = agent_log(tmp_path, issue.iid, "forgetful")
    assert [call["kind"] for call in calls] == ["implement", "fix"]
    fix = calls[1]
    assert fix["session"] is None
    prompt = fix["prompt"]
    assert prompt.startswith("Your earlier conversation on this work is not available")
    assert f"issue #{issue.iid} of `{PROJECT}`: {goal.title}" in prompt
    assert "## Approved plan" in prompt and "Write app/vowels.py" in prompt
    assert "```diff\n" in prompt and "+++ b/app/vowels.py" in prompt  # the first attempt
    what_failed = prompt.split("## What to do now", 1)[1]
    assert what_failed.strip().startswith("Validation failed after your last change")


async def test_a_resume_that_fails_is_retried_in_a_fresh_session_with_the_whole_context(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure_agent(demo_sim, tmp_path, "dev", "loses_sessions")
    goal = GOALS[1]  # its first attempt fails validation
    async with runtime_for(demo_sim, config) as (runtime, _log):
        issue = await file_goal(runtime, goal.title, goal.description)
        await reach(runtime, {issue.iid: "review-ready"})
    calls = agent_log(tmp_path, issue.iid, "loses_sessions")
    assert [call["kind"] for call in calls] == ["implement", "fix", "fix"]
    resumed, fresh = calls[1], calls[2]
    assert resumed["session"] is not None
    assert resumed["prompt"].startswith("Validation failed after your last change")
    assert fresh["session"] is None
    assert fresh["prompt"].startswith("Your earlier conversation on this work is not available")
    assert fresh["prompt"].endswith(resumed["prompt"])
    assert "## Approved plan" in fresh["prompt"] and "+++ b/app/vowels.py" in fresh["prompt"]
