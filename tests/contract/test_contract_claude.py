"""The real Claude Code (@anthropic-ai/claude-code from npm) against a scripted Anthropic
Messages server (streaming) reached through ANTHROPIC_BASE_URL: the PM asks a question, the
answer given through the desk resumes the same Claude session, and the goal goes on to
merge-ready through a failed validation and a fix turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.desk_work import answer, questions_in
from roles.settings import AgentSettings
from sim.core.app import RunningSim
from tests.contract import clis
from tests.contract.model_server import ModelServer
from tests.contract.scripts import (
    ANSWER,
    FIX,
    FIXED,
    GOAL,
    GOAL_TITLE,
    PLANNING,
    QUESTION,
    shell_script,
    which_prompt,
)
from tests.support.engine import PROJECT, file_goal, reach
from tests.support.review_merge import (
    as_maintainer,
    file_on,
    full_config,
    issue_mr,
    merging_runtime,
)

# A cold install and a dozen real CLI turns take minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


async def test_a_claude_goal_resumes_its_session_after_a_question_and_reaches_merge_ready(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claude = clis.npm_cli("claude")
    server = ModelServer(shell_script)
    await server.start()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-contract-test")
    for name, value in clis.OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    settings = AgentSettings(
        kind="claude",
        command=str(claude),
        timeout_seconds=600,
        env_allow=["ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", *clis.OFFLINE_ENV],
    )
    config = full_config(demo_sim, tmp_path, agents={"claude": settings})
    config.roles.agent = "claude"
    try:
        async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
            # Default settings: bubblewrap, the sandbox users' agents run in.
            assert runtime.sandbox_warning is None, runtime.sandbox_warning
            issue = await file_goal(runtime, GOAL_TITLE, GOAL)
            await reach(runtime, {issue.iid: "needs-input"}, limit=600)
            notes = await runtime.services.gateway.notes(PROJECT, issue.iid)
            [question] = questions_in(notes)
            assert QUESTION in question.text
            changed, message = await answer(
                runtime.services, PROJECT, issue.iid, question.note_id, ANSWER, "alice", "Discord"
            )
            assert changed, message
            await reach(runtime, {issue.iid: "merge-ready"}, limit=1500)
            pm_runs = [
                await runtime.storage.runs.find(PROJECT, issue.iid, "pm", attempt)
                for attempt in (1, 2)
            ]
    finally:
        await server.stop()

    # The answered question resumed the first PM session: same session id, and the resumed
    # request carried the earlier conversation (the first plan request and its answer).
    assert pm_runs[0] is not None and pm_runs[1] is not None
    assert pm_runs[0].session_id and pm_runs[1].session_id == pm_runs[0].session_id
    plans = [r for r in server.of("messages") if which_prompt(r) == PLANNING]
    resumed = [r for r in plans if "Answer from @alice" in json.dumps(r.body["messages"][-1])]
    assert resumed, "no plan request carried the answer"
    earlier = json.dumps(resumed[0].body["messages"][:-1])
    assert QUESTION in earlier and "You are the product manager" in earlier

    mr = issue_mr(demo_sim, issue.iid)
    files = {
        item["path"]
        for item in as_maintainer(demo_sim).repository_tree(
            ref=mr.source_branch, recursive=True, get_all=True
        )
        if item["type"] == "blob"
    }
    assert not [path for path in files if path.startswith((".claude", "CLAUDE.local"))]
    assert {change["new_path"] for change in mr.changes()["changes"]} == {"app/shout.py"}
    assert file_on(demo_sim, "app/shout.py", mr.source_branch) == FIXED
    fixes = [r for r in server.of("messages") if which_prompt(r) == FIX]
    assert fixes
    # The fix turn resumed the developer's session: the plan was in its conversation.
    assert "Write app/shout.py with shout(text)" in json.dumps(fixes[0].body["messages"])
