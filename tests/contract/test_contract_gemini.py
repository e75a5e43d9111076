"""The real Gemini CLI (@google/gemini-cli from npm), as far as it can be driven here: its own
`--help` lists every flag the adapter passes, and with no credentials its error (JSON on
stderr, exit status 41) reaches crewline as a clear error.

A full goal is not driven yet. Gemini talks to Google's GenerateContent API (not one of the
APIs the scripted server speaks), and a first try with GEMINI_API_KEY and
GOOGLE_GEMINI_BASE_URL pointing at loopback ended before any request with "Invalid auth
method selected." (exit 41): it also wants the auth type chosen in ~/.gemini/settings.json.
Serving GenerateContent and writing that setting is the next step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.doctor_agents import check_agent
from roles.agents.base import AgentTask, TaskKind
from roles.agents.gemini import GeminiAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.contract import clis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def gemini_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    for name, value in clis.OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    return home


def test_the_real_gemini_lists_every_flag_crewline_passes(gemini_home: Path) -> None:
    settings = AgentSettings(kind="gemini", command=str(clis.npm_cli("gemini")))
    lines = {check.name: check for check in check_agent("gemini", settings)}
    assert lines["agent gemini version"].ok, lines["agent gemini version"].detail
    assert lines["agent gemini flags"].ok, lines["agent gemini flags"].detail
    assert re.search(r"gemini 0\.61\.\d", lines["agent gemini version"].detail)
    assert len(GeminiAgent.passed_flags) == 6


async def test_the_real_gemini_without_credentials_is_a_clear_error(
    gemini_home: Path, tmp_path: Path
) -> None:
    agent = build_agent(
        "gemini",
        AgentSettings(kind="gemini", command=str(clis.npm_cli("gemini")), timeout_seconds=300),
        clis.default_sandbox(),
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    task = AgentTask(
        kind=TaskKind.IMPLEMENT,
        prompt="Add app/shout.py.",
        workspace=workspace,
        transcript_dir=tmp_path / "transcripts",
    )

    result = await agent.run(task)

    assert not result.ok and result.exit_code == 41
    assert result.error is not None
    assert result.error.startswith(
        "gemini: exited with status 41: gemini error (Error, code 41): Please set an Auth method"
    )
    assert "GEMINI_API_KEY" in result.error
    assert result.session_id  # read from the stderr JSON
    assert not list(workspace.iterdir())  # it left nothing in the workspace
