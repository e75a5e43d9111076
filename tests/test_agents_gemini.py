"""The gemini adapter against a fake ``gemini`` printing the documented headless JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roles.agents.base import TaskKind, Usage
from roles.agents.gemini import STDIN_INSTRUCTION, GeminiAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.support.agents import fake_cli, make_task, printing

SESSION = "c0ffee00-1234-4abc-9def-0123456789ab"


def model_stats(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
    return {
        "api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5053},
        "tokens": {
            "prompt": prompt,
            "candidates": candidates,
            "total": prompt + candidates + thoughts,
            "cached": 0,
            "thoughts": thoughts,
            "tool": 0,
        },
    }


OUTPUT = json.dumps(
    {
        "session_id": SESSION,
        "response": "Added slugify() with tests.\n",
        "stats": {
            "models": {
                "gemini-2.5-pro": model_stats(24939, 20, 154),
                "gemini-2.5-flash": model_stats(1000, 80, 0),
            },
            "tools": {"totalCalls": 1, "totalSuccess": 1, "totalFail": 0, "byName": {}},
            "files": {"totalLinesAdded": 12, "totalLinesRemoved": 0},
        },
    }
)


def gemini(**settings: object) -> GeminiAgent:
    agent = build_agent("gemini", AgentSettings(kind="gemini", **settings))
    assert isinstance(agent, GeminiAgent)
    return agent


async def test_command_line_and_parsed_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "gemini", printing(OUTPUT))
    task = make_task(tmp_path)

    result = await gemini(model="gemini-2.5-pro").run(task)

    call = fake.record()
    assert call["argv"] == [
        "-p",
        task.prompt,
        "--output-format",
        "json",
        "--skip-trust",
        "--model",
        "gemini-2.5-pro",
        "--approval-mode",
        "auto_edit",
    ]
    assert call["stdin"] == ""
    assert result.ok, result.error
    assert result.output == "Added slugify() with tests."
    assert result.session_id == SESSION
    assert result.usage == Usage(tokens_in=25939, tokens_out=20 + 154 + 80)
    transcript = result.transcript.read_text()
    assert f"-p <prompt: {len(task.prompt)} chars> --output-format json" in transcript
    assert task.prompt not in transcript


async def test_resume_and_plans_in_the_default_approval_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "gemini", printing(OUTPUT))
    task = make_task(tmp_path, kind=TaskKind.PLAN, session_id=SESSION)

    await gemini(args=["--include-directories", "../shared"]).run(task)

    assert fake.record()["argv"] == [
        "-p",
        task.prompt,
        "--output-format",
        "json",
        "--skip-trust",
        "--include-directories",
        "../shared",
        "--resume",
        SESSION,
    ]


async def test_a_prompt_too_long_for_argv_goes_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "gemini", printing(OUTPUT))
    prompt = "Fix the failing job.\n" + "log line\n" * 30_000

    result = await gemini(args=["--yolo"]).run(make_task(tmp_path, prompt))

    call = fake.record()
    assert call["argv"] == [
        "-p",
        STDIN_INSTRUCTION,
        "--output-format",
        "json",
        "--skip-trust",
        "--yolo",
    ]
    assert call["stdin"] == prompt
    assert result.ok


async def test_a_reported_error_and_failing_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = json.dumps({"error": {"type": "ApiError", "message": "Quota exceeded", "code": 429}})
    fake_cli(tmp_path, monkeypatch, "gemini", printing(stdout, "", 1))

    result = await gemini().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 1
    assert result.error == (
        "gemini: exited with status 1: gemini error (ApiError, code 429): Quota exceeded"
    )


# What the real Gemini CLI 0.61.0 printed, with no auth configured: nothing on stdout, this on
# stderr, exit status 41.
NO_AUTH_STDERR = """{
  "session_id": "cb6fd1f9-fc15-4925-8677-8490d720eb7f",
  "error": {
    "type": "Error",
    "message": "Please set an Auth method in your /home/u/.gemini/settings.json or specify one of the following environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA",
    "code": 41
  }
}
"""


async def test_the_error_json_on_stderr_becomes_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise = "[WARN] Skipping extension in a folder that is not trusted\n"
    fake_cli(tmp_path, monkeypatch, "gemini", printing("", noise + NO_AUTH_STDERR, 41))

    result = await gemini().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 41
    assert result.error == (
        "gemini: exited with status 41: gemini error (Error, code 41): Please set an Auth "
        "method in your /home/u/.gemini/settings.json or specify one of the following "
        "environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, "
        "GOOGLE_GENAI_USE_GCA"
    )
    assert result.session_id == "cb6fd1f9-fc15-4925-8677-8490d720eb7f"


async def test_the_operators_skip_trust_is_not_doubled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "gemini", printing(OUTPUT))

    await gemini(args=["--skip-trust"]).run(make_task(tmp_path, kind=TaskKind.PLAN))

    assert fake.record()["argv"].count("--skip-trust") == 1


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("Loaded cached credentials.\nDone!\n", "gemini did not print JSON on stdout"),
        (json.dumps({"stats": {}}), "gemini's JSON has no 'response' text"),
        (
            json.dumps({"response": "ok", "stats": {"models": {"m": {"api": {}}}}}),
            "gemini: stats.models.m has no 'tokens' object",
        ),
    ],
)
async def test_malformed_output_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, expected: str
) -> None:
    fake_cli(tmp_path, monkeypatch, "gemini", printing(stdout))

    result = await gemini().run(make_task(tmp_path))

    assert not result.ok
    assert result.error is not None and result.error.startswith("gemini: unreadable output: ")
    assert expected in result.error
