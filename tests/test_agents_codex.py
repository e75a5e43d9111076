"""The codex adapter against a fake ``codex`` printing the documented ``exec --json`` events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from roles.agents.base import TaskKind, Usage
from roles.agents.codex import CodexAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.support.agents import fake_cli, gone, jsonl, make_task, printing

THREAD = "0199a213-81c0-7800-8aa1-bbab2a035a53"
EVENTS = jsonl(
    {"type": "thread.started", "thread_id": THREAD},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Plan**"}},
    {
        "type": "item.completed",
        "item": {
            "id": "item_1",
            "type": "command_execution",
            "command": "bash -lc 'pytest -q'",
            "aggregated_output": "3 passed\n",
            "exit_code": 0,
            "status": "completed",
        },
    },
    {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "Draft"}},
    {
        "type": "item.completed",
        "item": {"id": "item_3", "type": "agent_message", "text": "Added slugify() with tests."},
    },
    {
        "type": "turn.completed",
        "usage": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122},
    },
)


def codex(**settings: object) -> CodexAgent:
    agent = build_agent("codex", AgentSettings(kind="codex", **settings))
    assert isinstance(agent, CodexAgent)
    return agent


async def test_new_turn_command_line_and_parsed_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "codex", printing(EVENTS, "codex: working\n"))
    task = make_task(tmp_path)

    result = await codex(model="gpt-5-codex", args=["-c", "model_reasoning_effort=high"]).run(task)

    call = fake.record()
    assert call["argv"] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "--model",
        "gpt-5-codex",
        "-c",
        "model_reasoning_effort=high",
        "-",
    ]
    assert call["stdin"] == task.prompt and call["cwd"] == str(task.workspace)
    assert result.ok, result.error
    assert result.output == "Added slugify() with tests."
    assert result.session_id == THREAD
    assert result.usage == Usage(tokens_in=24763, tokens_out=122, cost_usd=0.0)
    assert result.exit_code == 0 and result.error is None


async def test_resume_puts_the_session_after_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resumed run may not announce the thread again: the session carries over.
    events = jsonl(
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": "Fixed"}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}},
        {"type": "turn.completed", "usage": {"input_tokens": 7, "output_tokens": 1}},
    )
    fake = fake_cli(tmp_path, monkeypatch, "codex", printing(events))

    result = await codex().run(make_task(tmp_path, kind=TaskKind.FIX, session_id=THREAD))

    assert fake.record()["argv"][-4:] == ["workspace-write", "resume", THREAD, "-"]
    assert result.ok and result.output == "Fixed"
    assert result.session_id == THREAD
    assert result.usage == Usage(tokens_in=17, tokens_out=6)


async def test_plans_run_read_only_and_operator_sandbox_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "codex", printing(EVENTS))

    await codex().run(make_task(tmp_path, kind=TaskKind.PLAN))
    assert fake.record()["argv"][:5] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "read-only",
    ]

    await codex(args=["--sandbox=danger-full-access"]).run(make_task(tmp_path))
    assert fake.record()["argv"] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox=danger-full-access",
        "-",
    ]


async def test_a_failed_turn_is_a_failed_run_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = jsonl(
        {"type": "thread.started", "thread_id": THREAD},
        {"type": "turn.started"},
        {"type": "error", "message": "You've hit your usage limit."},
        {"type": "turn.failed", "error": {"message": "You've hit your usage limit."}},
    )
    fake_cli(tmp_path, monkeypatch, "codex", printing(events, "", 1))

    result = await codex().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 1
    assert (
        result.error
        == "codex: exited with status 1: codex turn failed: You've hit your usage limit."
    )
    assert result.session_id == THREAD


async def test_output_without_events_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(tmp_path, monkeypatch, "codex", printing("Reading prompt from stdin...\nDone.\n"))

    result = await codex().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 0
    assert result.error is not None
    assert result.error.startswith(
        "codex: unreadable output: codex printed no JSON events on stdout; "
        "expected `codex exec --json` JSONL"
    )


async def test_events_without_an_agent_message_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = jsonl({"type": "thread.started", "thread_id": THREAD}, {"type": "turn.completed"})
    fake_cli(tmp_path, monkeypatch, "codex", printing(events))

    result = await codex().run(make_task(tmp_path))

    assert not result.ok
    assert result.error is not None and "without an agent_message item" in result.error


async def test_bad_usage_figures_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = EVENTS + jsonl({"type": "turn.completed", "usage": {"input_tokens": "lots"}})
    fake_cli(tmp_path, monkeypatch, "codex", printing(events))

    result = await codex().run(make_task(tmp_path))

    assert not result.ok
    assert result.error is not None
    assert "codex: input_tokens is 'lots', expected a non-negative integer" in result.error


async def test_a_timed_out_run_keeps_its_session_for_resuming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = jsonl({"type": "thread.started", "thread_id": THREAD})
    body = f"print({started.strip()!r}, flush=True)\ntime.sleep(60)\n"
    fake_cli(tmp_path, monkeypatch, "codex", body)

    result = await codex(timeout_seconds=1.0).run(make_task(tmp_path))

    assert result.timed_out and not result.ok
    assert result.session_id == THREAD


# What the real Codex CLI 0.171.0 printed with its provider unreachable (it never exits).
OFFLINE_START = jsonl(
    {"type": "thread.started", "thread_id": THREAD},
    {
        "type": "item.completed",
        "item": {
            "id": "item_0",
            "type": "error",
            "message": "Model metadata for `test-model` not found. Defaulting to fallback "
            "metadata; this can degrade performance and cause issues.",
        },
    },
    {"type": "turn.started"},
)
RECONNECTING = jsonl(
    {
        "type": "error",
        "message": "Reconnecting... waiting for network (Connection failed: error sending request)",
    }
)


async def test_repeated_reconnecting_errors_end_the_turn_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        f"sys.stdout.write({OFFLINE_START!r})\nsys.stdout.flush()\n"
        f"Path('pid').write_text(str(os.getpid()))\n"
        f"while True:\n    sys.stdout.write({RECONNECTING!r})\n    sys.stdout.flush()\n"
        "    time.sleep(0.1)\n"
    )
    fake_cli(tmp_path, monkeypatch, "codex", body)
    task = make_task(tmp_path, timeout_seconds=60.0)

    started = time.monotonic()
    result = await codex().run(task)

    assert time.monotonic() - started < 15, "waited for the timeout instead of giving up"
    assert not result.ok and not result.timed_out
    assert result.error is not None
    assert result.error.startswith("codex: stopped early: codex cannot reach its model provider")
    assert "Reconnecting... waiting for network" in result.error
    assert result.session_id == THREAD
    pid = int((task.workspace / "pid").read_text())
    assert await gone(pid)
    assert "stopped early" in result.transcript.read_text()


async def test_a_reconnect_that_recovers_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = OFFLINE_START + RECONNECTING + RECONNECTING + EVENTS.split("\n", 1)[1]
    fake_cli(tmp_path, monkeypatch, "codex", printing(flaky))

    result = await codex().run(make_task(tmp_path))

    assert result.ok, result.error
    assert result.output == "Added slugify() with tests."
