"""The real aider (aider-chat from PyPI) against a scripted OpenAI-compatible model server:
one goal from pm-ready to merge-ready with aider as PM, developer and reviewer, through a
failed validation and a fix turn, with default adapter settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from roles.settings import AgentSettings
from sim.core.app import RunningSim
from tests.contract import clis
from tests.contract.model_server import ModelServer
from tests.contract.scripts import (
    FIX,
    FIXED,
    GOAL,
    GOAL_TITLE,
    aider_script,
    last_user_text,
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


async def test_an_aider_goal_goes_from_plan_to_merge_ready_with_no_state_file_on_the_branch(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aider = clis.aider()
    server = ModelServer(aider_script)
    await server.start()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENAI_API_BASE", f"{server.base_url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-contract-test")
    for name, value in clis.OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    settings = AgentSettings(
        kind="aider",
        command=str(aider),
        model="openai/test-model",
        timeout_seconds=600,
        env_allow=["OPENAI_API_BASE", "OPENAI_API_KEY", *clis.OFFLINE_ENV],
    )
    config = full_config(demo_sim, tmp_path, agents={"aider": settings})
    config.roles.agent = "aider"
    try:
        async with merging_runtime(demo_sim, config, hold_merges=True) as (runtime, _, _):
            # Default settings: bubblewrap, the sandbox users' agents run in.
            assert runtime.sandbox_warning is None, runtime.sandbox_warning
            issue = await file_goal(runtime, GOAL_TITLE, GOAL)
            await reach(runtime, {issue.iid: "merge-ready"}, limit=1500)
    finally:
        await server.stop()

    mr = issue_mr(demo_sim, issue.iid)
    files = {
        item["path"]
        for item in as_maintainer(demo_sim).repository_tree(
            ref=mr.source_branch, recursive=True, get_all=True
        )
        if item["type"] == "blob"
    }
    assert "app/shout.py" in files
    assert not [path for path in files if path.startswith((".aider", ".claude", ".gemini"))]
    assert file_on(demo_sim, "app/shout.py", mr.source_branch) == FIXED
    changed = {change["new_path"] for change in mr.changes()["changes"]}
    assert changed == {"app/shout.py"}

    asked = [which_prompt(request) for request in server.of("chat")]
    assert asked.count(FIX) == 1, asked
    fix = next(last_user_text(r) for r in server.of("chat") if which_prompt(r) == FIX)
    # aider keeps no session: the fix turn stood alone with the issue, plan and diff so far.
    assert "## Approved plan" in fix and "Write app/shout.py with shout(text)" in fix
    assert GOAL in fix and "+++ b/app/shout.py" in fix and "+    return text.upper()" in fix
    assert f"issue #{issue.iid} of `{PROJECT}`" in fix
