"""What every agent run guarantees, shown through the generic ``command`` adapter: the
environment allow-list, the timeout that kills the whole process group, the transcript, and
bounded memory. Real subprocesses throughout."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from roles.agents import process as agent_process
from roles.agents.base import AgentConfigError
from roles.agents.command import CommandAgent
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.support.agents import Fake, gone, make_task, printing, wait_for_file, write_fake

SECRET = "glpat-FAKEfakeFAKEfake0123"

# The fake starts a grandchild `sleep 60` in its own process group, records both pids, then
# waits; TERM_IGNORED makes both ignore SIGTERM (SIG_IGN survives exec).
SPAWN_AND_WAIT = """
if os.environ.get("FAKE_IGNORE_TERM") or {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "60"])
Path(RECORD.parent / "pids.json").write_text(json.dumps([os.getpid(), child.pid]))
print("started", flush=True)
{after}
"""


def spawning_fake(
    bin_dir: Path, *, ignore_term: bool = False, after: str = "time.sleep(60)"
) -> Fake:
    body = SPAWN_AND_WAIT.format(ignore_term=ignore_term, after=after)
    return write_fake(bin_dir, "agent", body)


def command_agent(fake: Fake, **settings: object) -> CommandAgent:
    agent = build_agent("local", AgentSettings(kind="command", command=str(fake.path), **settings))
    assert isinstance(agent, CommandAgent)
    return agent


def pids(fake: Fake) -> list[int]:
    result: list[int] = json.loads((fake.path.parent / "pids.json").read_text())
    return result


async def test_agent_sees_only_allow_listed_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CREWLINE_GITLAB_TOKEN", "CREWLINE_DISCORD_TOKEN", "GITLAB_TOKEN"):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("CREWLINE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("UNRELATED_SETTING", "x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-for-the-agent")
    monkeypatch.setenv("LANG", "C.UTF-8")
    fake = write_fake(tmp_path / "bin", "agent", "print('env: ' + repr(sorted(os.environ)))\n")
    agent = command_agent(fake, env_allow=["ANTHROPIC_API_KEY"])

    result = await agent.run(make_task(tmp_path))

    assert result.ok, result.error
    env = fake.record()["env"]
    expected = {name for name in agent_process.BASE_ENV_ALLOW if name in os.environ}
    expected |= {"ANTHROPIC_API_KEY", "CREWLINE_TASK_KIND", "CREWLINE_TRANSCRIPT_DIR"}
    assert set(env) == expected
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-for-the-agent"
    assert env["LANG"] == "C.UTF-8"
    assert SECRET not in result.transcript.read_text()


@pytest.mark.parametrize(
    "name",
    [
        "CREWLINE_GITLAB_TOKEN",
        "CREWLINE_DISCORD_TOKEN",
        "CREWLINE_WEBHOOK_SECRET",
        "GITLAB_TOKEN",
        "DISCORD_TOKEN",
        "gitlab_private_token",
    ],
)
def test_allow_listing_a_crewline_secret_is_refused(name: str) -> None:
    settings = AgentSettings(kind="claude", env_allow=["ANTHROPIC_API_KEY", name])
    with pytest.raises(AgentConfigError, match=name):
        build_agent("claude", settings)


def test_allow_listing_a_malformed_name_is_refused() -> None:
    with pytest.raises(AgentConfigError, match="'OPENAI-KEY' is not an environment variable"):
        build_agent("codex", AgentSettings(kind="codex", env_allow=["OPENAI-KEY"]))


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    fake = spawning_fake(tmp_path / "bin")
    agent = command_agent(fake, timeout_seconds=1.0)

    started = time.monotonic()
    result = await agent.run(make_task(tmp_path))

    assert time.monotonic() - started < 5
    assert not result.ok and result.timed_out
    assert result.error == "local: timed out after 1 s; its process group was killed"
    agent_pid, grandchild = pids(fake)
    assert await gone(agent_pid) and await gone(grandchild)
    assert "killed by SIGTERM after" in result.transcript.read_text()


async def test_processes_ignoring_sigterm_are_killed_after_the_grace(tmp_path: Path) -> None:
    fake = spawning_fake(tmp_path / "bin", ignore_term=True)
    agent = CommandAgent(
        "local",
        AgentSettings(kind="command", command=str(fake.path), timeout_seconds=1.0),
        kill_grace_seconds=0.3,
    )

    started = time.monotonic()
    result = await agent.run(make_task(tmp_path))

    assert time.monotonic() - started < 5
    assert result.timed_out and result.exit_code == -9
    agent_pid, grandchild = pids(fake)
    assert await gone(agent_pid) and await gone(grandchild)


async def test_the_task_timeout_applies_when_shorter_than_the_agents(tmp_path: Path) -> None:
    fake = spawning_fake(tmp_path / "bin")
    agent = command_agent(fake, timeout_seconds=600.0)

    result = await agent.run(make_task(tmp_path, timeout_seconds=0.5))

    assert result.timed_out
    assert result.error == "local: timed out after 0.5 s; its process group was killed"


async def test_children_left_behind_after_a_normal_exit_are_killed(tmp_path: Path) -> None:
    # The grandchild keeps stdout open: without the group kill the run would wait 60 s.
    fake = spawning_fake(tmp_path / "bin", after="print('done', flush=True)")
    agent = command_agent(fake)

    started = time.monotonic()
    result = await agent.run(make_task(tmp_path))

    assert time.monotonic() - started < 5
    assert result.ok and result.output == "started\ndone"
    assert await gone(pids(fake)[1])


async def test_cancelling_a_run_kills_the_process_group(tmp_path: Path) -> None:
    fake = spawning_fake(tmp_path / "bin")
    agent = command_agent(fake)

    run = asyncio.create_task(agent.run(make_task(tmp_path)))
    await wait_for_file(fake.path.parent / "pids.json")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    agent_pid, grandchild = pids(fake)
    assert await gone(agent_pid) and await gone(grandchild)


async def test_transcript_keeps_command_stdout_stderr_and_exit(tmp_path: Path) -> None:
    fake = write_fake(
        tmp_path / "bin", "agent", printing("the answer\n", "warning: slow disk\n", 0)
    )
    agent = command_agent(fake, args=["--quiet"])
    task = make_task(tmp_path)

    result = await agent.run(task)

    assert result.transcript.parent == task.transcript_dir
    assert result.transcript.name.endswith("-implement.log")
    text = result.transcript.read_text()
    assert f"# command: {fake.path} --quiet < <prompt on stdin: {len(task.prompt)} chars>" in text
    assert "# task: implement demo/app#3 dev attempt 1" in text
    stdout_part, stderr_part = text.split("--- stdout ---\n", 1)[1].split("\n--- stderr ---\n")
    assert stdout_part == "the answer\n"
    assert stderr_part.startswith("warning: slow disk\n")
    assert "--- exited with status 0 after" in stderr_part
    assert task.prompt not in text
    assert sorted(p.name for p in task.transcript_dir.iterdir()) == [result.transcript.name]


async def test_each_turn_gets_its_own_transcript(tmp_path: Path) -> None:
    fake = write_fake(tmp_path / "bin", "agent", printing("ok\n"))
    agent = command_agent(fake)
    task = make_task(tmp_path)

    first, second = await agent.run(task), await agent.run(task)

    assert first.transcript != second.transcript
    assert first.transcript.exists() and second.transcript.exists()


async def test_large_prompt_and_output_do_not_deadlock(tmp_path: Path) -> None:
    body = "sys.stdout.write(str(len(_stdin)) + '\\n' + 'x' * 3_000_000 + '\\n')\n"
    fake = write_fake(tmp_path / "bin", "agent", body)
    prompt = "p" * 2_000_000

    result = await command_agent(fake).run(make_task(tmp_path, prompt))

    assert result.ok, result.error
    assert result.output.splitlines()[0] == "2000000"
    assert len(result.output) == len("2000000\n") + 3_000_000


async def test_only_a_tail_of_stdout_stays_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_process, "STDOUT_LIMIT", 1000)
    body = "for i in range(2000):\n    print(f'line {i:05d}')\n"
    fake = write_fake(tmp_path / "bin", "agent", body)

    result = await command_agent(fake).run(make_task(tmp_path))

    assert result.ok
    assert len(result.output) <= 1000 and result.output.endswith("line 01999")
    assert "line 00000\n" in result.transcript.read_text()  # the transcript has it all


async def test_a_failing_exit_reports_the_status_and_stderr(tmp_path: Path) -> None:
    fake = write_fake(
        tmp_path / "bin", "agent", printing("partial\n", "boom: model unavailable\n", 3)
    )

    result = await command_agent(fake).run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 3
    assert result.error == "local: exited with status 3: boom: model unavailable"
    assert result.output == "partial"


async def test_a_missing_executable_is_a_failed_run_not_a_crash(tmp_path: Path) -> None:
    settings = AgentSettings(kind="command", command=str(tmp_path / "no-such-agent"))

    result = await build_agent("local", settings).run(make_task(tmp_path))

    assert not result.ok and result.exit_code is None
    assert result.error is not None and "not found (is it installed and on PATH?)" in result.error
    assert "could not start" in result.transcript.read_text()


async def test_a_missing_workspace_is_reported(tmp_path: Path) -> None:
    fake = write_fake(tmp_path / "bin", "agent", printing("ok\n"))
    task = make_task(tmp_path)
    task.workspace.rmdir()

    result = await command_agent(fake).run(task)

    assert not result.ok
    assert result.error is not None and "is not a directory" in result.error
    assert not fake.record_path.exists()


async def test_a_malformed_session_id_is_refused_before_running(tmp_path: Path) -> None:
    fake = write_fake(tmp_path / "bin", "agent", printing("ok\n"))

    result = await command_agent(fake).run(make_task(tmp_path, session_id="--dangerous"))

    assert not result.ok
    assert result.error == "local: refusing to resume the malformed session id '--dangerous'"
    assert not fake.record_path.exists()
