"""The generic ``command`` adapter (prompt on stdin or in a file, the report line) and
``build_agent``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roles.agents.aider import AiderAgent
from roles.agents.base import AgentConfigError, TaskKind, Usage
from roles.agents.claude import ClaudeAgent
from roles.agents.codex import CodexAgent
from roles.agents.command import CommandAgent
from roles.agents.gemini import GeminiAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.support.agents import make_task, printing, write_fake

REPORT = json.dumps(
    {
        "crewline_usage": {"tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.01},
        "session_id": "s-2",
    }
)


def command_agent(fake_path: Path, **settings: object) -> CommandAgent:
    agent = build_agent("local", AgentSettings(kind="command", command=str(fake_path), **settings))
    assert isinstance(agent, CommandAgent)
    return agent


async def test_prompt_on_stdin_and_the_crewline_variables(tmp_path: Path) -> None:
    fake = write_fake(tmp_path / "bin", "agent", "print('plan: ' + _stdin.upper())\n")
    task = make_task(tmp_path, "write a plan", kind=TaskKind.PLAN)

    result = await command_agent(fake.path, args=["--fast"]).run(task)

    call = fake.record()
    assert call["argv"] == ["--fast"] and call["stdin"] == "write a plan"
    assert call["cwd"] == str(task.workspace)
    assert call["env"]["CREWLINE_TASK_KIND"] == "plan"
    assert call["env"]["CREWLINE_TRANSCRIPT_DIR"] == str(task.transcript_dir)
    assert "CREWLINE_SESSION_ID" not in call["env"] and "CREWLINE_MODEL" not in call["env"]
    assert result.ok and result.output == "plan: WRITE A PLAN"
    assert result.usage is None and result.session_id is None


async def test_prompt_file_placeholder(tmp_path: Path) -> None:
    body = "print(Path(sys.argv[2]).read_text().upper())\n"
    fake = write_fake(tmp_path / "bin", "agent", body)
    task = make_task(tmp_path, "fix the bug")

    result = await command_agent(fake.path, args=["--prompt", "{prompt_file}"]).run(task)

    call = fake.record()
    prompt_file = result.transcript.with_suffix(".prompt.txt")
    assert call["argv"] == ["--prompt", str(prompt_file)]
    assert call["stdin"] == ""
    assert result.ok and result.output == "FIX THE BUG"


async def test_report_line_is_parsed_and_stripped(tmp_path: Path) -> None:
    fake = write_fake(tmp_path / "bin", "agent", printing(f"All done.\n\n{REPORT}\n"))

    result = await command_agent(fake.path).run(make_task(tmp_path))

    assert result.ok and result.output == "All done."
    assert result.usage == Usage(tokens_in=1200, tokens_out=300, cost_usd=0.01)
    assert result.session_id == "s-2"


async def test_resuming_passes_the_session_and_model(tmp_path: Path) -> None:
    report = json.dumps({"session_id": "s-3"})
    fake = write_fake(tmp_path / "bin", "agent", printing(f"Fixed.\n{report}\n"))

    result = await command_agent(fake.path, model="tiny").run(
        make_task(tmp_path, kind=TaskKind.FIX, session_id="s-2")
    )

    env = fake.record()["env"]
    assert env["CREWLINE_SESSION_ID"] == "s-2" and env["CREWLINE_MODEL"] == "tiny"
    assert env["CREWLINE_TASK_KIND"] == "fix"
    assert result.ok and result.output == "Fixed." and result.session_id == "s-3"
    assert result.usage is None


async def test_a_json_last_line_with_other_keys_is_output(tmp_path: Path) -> None:
    plan = json.dumps({"session_id": "x", "steps": ["a", "b"]})
    fake = write_fake(tmp_path / "bin", "agent", printing(f"{plan}\n"))

    result = await command_agent(fake.path).run(make_task(tmp_path, session_id="s-1"))

    assert result.ok and result.output == plan
    assert result.usage is None and result.session_id == "s-1"


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            {"crewline_usage": {"tokens_in": "many"}},
            "report line: crewline_usage: tokens_in is 'many', expected a non-negative integer",
        ),
        (
            {"crewline_usage": {"cost_usd": -0.5}},
            "report line: crewline_usage: cost_usd is -0.5, expected a non-negative number",
        ),
        ({"crewline_usage": [1, 2]}, "report line: crewline_usage is [1, 2], expected an object"),
        ({"session_id": 42}, "report line: session_id is 42, expected a non-empty string"),
    ],
)
async def test_a_malformed_report_fails_the_run_with_a_clear_error(
    tmp_path: Path, report: dict[str, object], expected: str
) -> None:
    fake = write_fake(tmp_path / "bin", "agent", printing(f"done\n{json.dumps(report)}\n"))

    result = await command_agent(fake.path).run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 0
    assert result.error is not None
    assert result.error.startswith(f"local: unreadable output: {expected} (transcript: ")


@pytest.mark.parametrize(
    ("kind", "adapter"),
    [
        ("codex", CodexAgent),
        ("claude", ClaudeAgent),
        ("gemini", GeminiAgent),
        ("aider", AiderAgent),
        ("command", CommandAgent),
    ],
)
def test_build_agent_picks_the_adapter(kind: str, adapter: type) -> None:
    settings = AgentSettings.model_validate(
        {"kind": kind, "command": "/opt/bin/agent" if kind == "command" else None}
    )

    agent = build_agent("main", settings)

    assert type(agent) is adapter and agent.name == "main"


def test_build_agent_refuses_the_demo_kind() -> None:
    with pytest.raises(AgentConfigError, match="agent 'demo': kind 'demo' has no CLI adapter"):
        build_agent("demo", AgentSettings(kind="demo"))


def test_an_adapter_refuses_settings_of_another_kind() -> None:
    with pytest.raises(AgentConfigError, match="kind 'claude' given to the codex adapter"):
        CodexAgent("x", AgentSettings(kind="claude"))


def test_the_configured_executable_replaces_the_default() -> None:
    configured = build_agent("c", AgentSettings(kind="codex", command="/opt/codex/bin/codex"))
    default = build_agent("c", AgentSettings(kind="codex"))
    assert isinstance(configured, CodexAgent) and isinstance(default, CodexAgent)
    assert configured.executable == "/opt/codex/bin/codex" and default.executable == "codex"
