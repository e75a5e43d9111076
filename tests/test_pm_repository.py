"""The PM plans against the code: its acceptance checks must be valid shell before the plan is
posted, and owned globs that match no file of the target branch are flagged in the plan."""

from __future__ import annotations

from pathlib import Path

from sim.core.app import RunningSim
from tests.support.engine import (
    agent_log,
    configure_agent,
    file_goal,
    note_bodies,
    reach,
    runtime_for,
)


async def test_an_invalid_acceptance_check_sends_the_pm_back_and_unmatched_globs_are_flagged(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure_agent(demo_sim, tmp_path, "pm", "bad_shell_plan")
    config.roles.dev.enabled = False  # the demo's plan gate approves: stop before the developer
    async with runtime_for(demo_sim, config) as (runtime, _log):
        issue = await file_goal(runtime, "Document the app", "Write a usage page.")
        await reach(runtime, {issue.iid: "dev-ready"})
    turns = agent_log(tmp_path, issue.iid, "bad_shell_plan")
    assert len(turns) == 2
    assert "## The repository" in turns[0]["prompt"] and "\nREADME.md\n" in turns[0]["prompt"]
    retry = turns[1]["prompt"]
    # The fake agent reports no session: the retry repeats the whole request, then the error.
    assert retry.startswith(turns[0]["prompt"])
    assert 'acceptance check 1 (`test -f README.md && echo "ok`) is not valid shell' in retry
    assert "Unterminated quoted string" in retry
    plans = [body for body in note_bodies(demo_sim, issue.iid) if "key=pm-1:plan" in body]
    assert len(plans) == 1
    assert "**Owned paths that match no file on `main`**: `lib/**/*.rs`." in plans[0]
    assert "`README*`" not in plans[0].split("**Owned paths that match no file")[1]
