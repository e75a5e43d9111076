"""The real Codex CLI (@openai/codex from npm, its native binary inside) against a scripted
Responses API server (streaming) configured as a custom provider: one goal from pm-ready to
merge-ready through a failed validation and a fix turn; and, offline, its endless
"Reconnecting..." errors end the turn at once.

Codex runs inside crewline's default (bubblewrap) sandbox with its own workspace-write
sandbox nested in it (docs/decisions/0026). CODEX_HOME lives under the cache directory, not
under /tmp: Codex 0.171 refuses to create its sandbox helper under a temporary directory, and
every command in the workspace-write sandbox then fails with "bwrap: execvp
codex-linux-sandbox: No such file or directory", sandboxed by crewline or not."""

from __future__ import annotations

import functools
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from roles.agents.base import AgentTask, TaskKind
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from sim.core.app import RunningSim
from tests.contract import clis
from tests.contract.model_server import ModelServer
from tests.contract.scripts import FIX, FIXED, GOAL, GOAL_TITLE, shell_script, which_prompt
from tests.support.engine import file_goal, reach
from tests.support.review_merge import (
    as_maintainer,
    file_on,
    full_config,
    issue_mr,
    merging_runtime,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def provider(base_url: str) -> list[str]:
    """Operator args pointing Codex at a custom Responses provider."""
    table = f'{{name="sim", base_url="{base_url}/v1", wire_api="responses", env_key="SIM_KEY"}}'
    return ["-c", 'model_provider="sim"', "-c", f"model_providers.sim={table}"]


@pytest.fixture
def codex_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = clis.CACHE / f"codex-home-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    monkeypatch.setenv("CODEX_HOME", str(home))
    monkeypatch.setenv("SIM_KEY", "sk-contract-test")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def settings(base_url: str, timeout: float = 600) -> AgentSettings:
    return AgentSettings(
        kind="codex",
        command=str(clis.npm_cli("codex")),
        model="test-model",
        args=provider(base_url),
        timeout_seconds=timeout,
        env_allow=["CODEX_HOME", "SIM_KEY"],
    )


async def test_a_codex_goal_goes_from_plan_to_merge_ready_through_a_fix_turn(
    demo_sim: RunningSim, tmp_path: Path, codex_home: Path
) -> None:
    server = ModelServer(functools.partial(shell_script, ask=False))
    await server.start()
    config = full_config(demo_sim, tmp_path, agents={"codex": settings(server.base_url)})
    config.roles.agent = "codex"
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
    assert not [path for path in files if path.startswith(".codex")]
    assert {change["new_path"] for change in mr.changes()["changes"]} == {"app/shout.py"}
    assert file_on(demo_sim, "app/shout.py", mr.source_branch) == FIXED
    fixes = [r for r in server.of("responses") if which_prompt(r) == FIX]
    assert fixes
    # The fix turn resumed the developer's thread: the plan was in its input.
    assert "Write app/shout.py with shout(text)" in json.dumps(fixes[0].body["input"])


async def test_offline_codex_ends_the_turn_at_once_with_the_connection_error(
    tmp_path: Path, codex_home: Path
) -> None:
    agent = build_agent("codex", settings("http://127.0.0.1:9"), clis.default_sandbox())
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    task = AgentTask(
        kind=TaskKind.IMPLEMENT,
        prompt="Add app/shout.py.",
        workspace=workspace,
        transcript_dir=tmp_path / "transcripts",
        timeout_seconds=900,
    )
    started = time.monotonic()
    result = await agent.run(task)
    took = time.monotonic() - started

    assert not result.ok and not result.timed_out
    assert result.error is not None
    assert "stopped early: codex cannot reach its model provider" in result.error
    assert "Reconnecting" in result.error
    assert took < 600, f"took {took:.0f} s"
