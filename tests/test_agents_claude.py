"""The claude adapter against a fake ``claude`` printing the documented ``-p --output-format
json`` result object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roles.agents import process as agent_process
from roles.agents.base import TaskKind, Usage
from roles.agents.claude import ClaudeAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.support.agents import fake_cli, make_task, printing

SESSION = "4f8d2c1e-6b0a-4d7e-9a55-0c3b1e2f7a90"


def result_json(**overrides: Any) -> str:
    result: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 2847,
        "duration_api_ms": 2100,
        "num_turns": 4,
        "result": "Implemented slugify() and its tests.\n",
        "session_id": SESSION,
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 1500,
            "cache_read_input_tokens": 8000,
            "output_tokens": 256,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
    }
    result.update(overrides)
    return json.dumps({key: value for key, value in result.items() if value is not None}) + "\n"


def claude(**settings: object) -> ClaudeAgent:
    agent = build_agent("claude", AgentSettings(kind="claude", **settings))
    assert isinstance(agent, ClaudeAgent)
    return agent


async def test_command_line_and_parsed_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "claude", printing(result_json()))
    task = make_task(tmp_path)

    result = await claude(model="sonnet", args=["--max-turns", "30"]).run(task)

    call = fake.record()
    assert call["argv"] == [
        "-p",
        "--output-format",
        "json",
        "--model",
        "sonnet",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "30",
    ]
    assert call["stdin"] == task.prompt and call["cwd"] == str(task.workspace)
    assert result.ok, result.error
    assert result.output == "Implemented slugify() and its tests."
    assert result.session_id == SESSION
    assert result.usage == Usage(tokens_in=12 + 1500 + 8000, tokens_out=256, cost_usd=0.0123)


async def test_resume_and_plans_without_edit_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "claude", printing(result_json()))

    result = await claude().run(make_task(tmp_path, kind=TaskKind.PLAN, session_id=SESSION))

    assert fake.record()["argv"] == ["-p", "--output-format", "json", "--resume", SESSION]
    assert result.ok and result.session_id == SESSION


async def test_operator_permission_flags_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "claude", printing(result_json()))

    await claude(args=["--dangerously-skip-permissions"]).run(make_task(tmp_path))

    assert fake.record()["argv"] == [
        "-p",
        "--output-format",
        "json",
        "--dangerously-skip-permissions",
    ]


async def test_a_reported_error_fails_the_run_but_keeps_session_and_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = result_json(subtype="error_max_turns", is_error=True, num_turns=30, result=None)
    fake_cli(tmp_path, monkeypatch, "claude", printing(stdout))

    result = await claude().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 0
    assert result.error == "claude: claude reported an error (error_max_turns): no message"
    assert result.session_id == SESSION
    assert result.usage is not None and result.usage.cost_usd == 0.0123


# What the real Claude Code 2.1.197 printed with no login (exit status 1): "success" and an error.
NOT_LOGGED_IN = (
    '{"type":"result","subtype":"success","is_error":true,"api_error_status":null,'
    '"duration_ms":878,"duration_api_ms":0,"num_turns":1,'
    '"result":"Not logged in \u00b7 Please run /login","stop_reason":"stop_sequence",'
    '"session_id":"d442c4a2-0318-4790-b7f7-4d66edc7aa47","total_cost_usd":0,'
    '"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"output_tokens":0},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed"}\n'
)


@pytest.mark.parametrize("exit_code", [1, 0])
async def test_is_error_is_an_error_whatever_the_subtype_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int
) -> None:
    fake_cli(tmp_path, monkeypatch, "claude", printing(NOT_LOGGED_IN, "", exit_code))

    result = await claude().run(make_task(tmp_path))

    assert not result.ok
    reason = "claude reported an error: Not logged in · Please run /login"
    prefix = "claude: exited with status 1: " if exit_code else "claude: "
    assert result.error == prefix + reason
    assert "success" not in result.error


async def test_a_failing_exit_reports_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(
        tmp_path, monkeypatch, "claude", printing("", "Invalid API key · Please run /login\n", 1)
    )

    result = await claude().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 1 and result.usage is None
    assert result.error == "claude: exited with status 1: Invalid API key · Please run /login"


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("Sure! I added the helper.\n", "claude did not print JSON on stdout"),
        ("", "claude printed nothing on stdout; expected one JSON object"),
        ('["result"]\n', "claude printed JSON list, expected an object"),
        (json.dumps({"type": "result", "session_id": SESSION}), "has no 'result' text"),
        (result_json(total_cost_usd=-1), "total_cost_usd is -1, expected a non-negative number"),
    ],
)
async def test_malformed_output_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, expected: str
) -> None:
    fake_cli(tmp_path, monkeypatch, "claude", printing(stdout))

    result = await claude().run(make_task(tmp_path))

    assert not result.ok
    assert result.error is not None and result.error.startswith("claude: unreadable output: ")
    assert expected in result.error


async def test_a_notice_line_before_the_json_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(tmp_path, monkeypatch, "claude", printing("Update available!\n" + result_json()))

    result = await claude().run(make_task(tmp_path))

    assert result.ok and result.session_id == SESSION


async def test_output_beyond_the_memory_bound_is_reported_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_process, "STDOUT_LIMIT", 200)
    fake_cli(tmp_path, monkeypatch, "claude", printing(result_json(result="x" * 1000)))

    result = await claude().run(make_task(tmp_path))

    assert not result.ok
    assert result.error is not None
    assert "stdout exceeded 200 bytes, only its tail was kept" in result.error
    assert "x" * 1000 in result.transcript.read_text()
