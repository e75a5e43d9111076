"""The aider adapter against a fake ``aider`` printing what ``--message`` runs print."""

from __future__ import annotations

from pathlib import Path

import pytest

from roles.agents.aider import AiderAgent, aider_usage
from roles.agents.base import Usage
from roles.agents.registry import build_agent
from roles.compaction import LearningItem, parse_learnings
from roles.settings import AgentSettings
from tests.support.agents import fake_cli, make_task, printing

CHAT = """\
Aider v0.86.1
Main model: anthropic/claude-sonnet-4 with diff edit format, infinite output
Git repo: .git with 12 files
Repo-map: using 4096 tokens, auto refresh

I'll add the helper.

text_utils.py
<<<<<<< SEARCH
=======
def slugify(text):
    return "-".join(text.lower().split())
>>>>>>> REPLACE

Tokens: 2.5k sent, 1.2k cache write, 310 received. Cost: $0.0123 message, $0.0123 session.
Applied edit to text_utils.py
Tokens: 12k sent, 95 received. Cost: $0.04 message, $0.05 session.
"""


def aider(**settings: object) -> AiderAgent:
    agent = build_agent("aider", AgentSettings(kind="aider", **settings))
    assert isinstance(agent, AiderAgent)
    return agent


async def test_command_line_and_parsed_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "aider", printing(CHAT))
    task = make_task(tmp_path)

    result = await aider(model="sonnet", args=["--map-tokens", "2048"]).run(task)

    history = result.transcript.with_suffix("")
    assert fake.record()["argv"] == [
        "--message",
        task.prompt,
        "--yes-always",
        "--no-auto-commits",
        "--no-gitignore",
        "--no-check-update",
        "--no-show-release-notes",
        "--no-analytics",
        "--no-pretty",
        "--chat-history-file",
        f"{history}.aider-chat.md",
        "--input-history-file",
        f"{history}.aider-input.txt",
        "--edit-format",
        "diff",
        "--model",
        "sonnet",
        "--map-tokens",
        "2048",
    ]
    assert result.ok, result.error
    assert result.output == CHAT.strip()
    assert result.usage == Usage(tokens_in=14_500, tokens_out=405, cost_usd=0.05)
    assert result.session_id is None
    assert f"--message <prompt: {len(task.prompt)} chars>" in result.transcript.read_text()


@pytest.mark.parametrize(
    "chosen", [["--edit-format", "whole"], ["--edit-format=udiff"], ["--chat-mode", "ask"]]
)
async def test_the_operators_edit_format_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chosen: list[str]
) -> None:
    fake = fake_cli(tmp_path, monkeypatch, "aider", printing(CHAT))

    result = await aider(args=chosen).run(make_task(tmp_path, session_id="ignored-0"))

    argv = fake.record()["argv"]
    assert argv[-len(chosen) :] == chosen
    assert "diff" not in argv[: -len(chosen)]
    assert "--resume" not in argv and result.ok


async def test_a_prompt_too_long_for_argv_goes_in_a_message_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_message_file = "print(Path(sys.argv[sys.argv.index('--message-file') + 1]).read_text())\n"
    fake = fake_cli(tmp_path, monkeypatch, "aider", echo_message_file)
    prompt = "Fix the failing job.\n" + "log line\n" * 30_000

    result = await aider().run(make_task(tmp_path, prompt))

    argv = fake.record()["argv"]
    assert argv[0] == "--message-file" and "--message" not in argv
    assert argv[1] == str(result.transcript.with_suffix(".prompt.txt"))
    assert result.ok and result.output == prompt.strip()
    assert result.usage is None


async def test_a_failing_exit_is_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(
        tmp_path,
        monkeypatch,
        "aider",
        printing("Model sonnet: Missing these environment variables:\n", "", 1),
    )

    result = await aider().run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 1
    assert result.error == "aider: exited with status 1"
    assert result.output.startswith("Model sonnet: Missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tokens: 950 sent, 12 received.", Usage(950, 12, 0.0)),
        (
            "Tokens: 1.2M sent, 15k received. Cost: $3.10 message, $4.25 session.",
            Usage(1_200_000, 15_000, 4.25),
        ),
        (
            "\x1b[32mTokens: 3.4k sent, 2.0k cache hit, 1k received.\x1b[0m",
            Usage(3_400, 1_000, 0.0),
        ),
        ("No report here.", None),
    ],
)
def test_usage_report_lines(text: str, expected: Usage | None) -> None:
    assert aider_usage(text) == expected


# What the real aider 0.86.2 printed (stdout, --no-pretty) for one --message turn against a
# scripted OpenAI-compatible server, offline: warnings first, then the reply and its report.
REAL_086 = """\

Update git name with: git config user.name "Your Name"
Update git email with: git config user.email "you@example.com"
Warning for openai/test-model: Unknown context window size and costs, using sane
defaults.
You can skip this check with --no-show-model-warnings

https://aider.chat/docs/llms/warnings.html

Aider v0.86.2
Model: openai/test-model with diff edit format
Git repo: .git with 1 files
Repo-map: using 1024 tokens, auto refresh

I'll create it.

app/shout.py
```python
<<<<<<< SEARCH
=======
def shout(text):
    return text.upper() + "!"
>>>>>>> REPLACE
```

```crewline-learnings
[{"kind": "remember", "text": "x"}]
```

Tokens: 2.5k sent, 57 received.

app/shout.py
Applied edit to app/shout.py
"""


async def test_real_aider_output_keeps_the_learnings_block_and_its_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(
        tmp_path,
        monkeypatch,
        "aider",
        printing(REAL_086, "Warning: Input is not a terminal (fd=0).\n"),
    )

    result = await aider(model="openai/test-model").run(make_task(tmp_path))

    assert result.ok, result.error
    assert parse_learnings(result.output) == [LearningItem("remember", "x")]
    assert result.usage == Usage(tokens_in=2_500, tokens_out=57, cost_usd=0.0)
    assert result.session_id is None


def test_aider_gets_a_git_identity_from_its_environment(tmp_path: Path) -> None:
    """aider writes an identity into the repository's config when git has none; in the
    sandbox that config is read-only, so the identity comes from the environment."""
    import subprocess

    from roles.agents.aider import GIT_IDENTITY

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **GIT_IDENTITY}
    name = subprocess.run(
        ["git", "-C", str(tmp_path), "config", "--get", "user.name"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert name.stdout.strip() == "aider (crewline)"
    bare = subprocess.run(
        ["git", "-C", str(tmp_path), "config", "--get", "user.name"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, check=False,
    )  # fmt: skip
    assert bare.returncode == 1  # without it git has none, and aider would write one


# What aider 0.86.2 printed in a worktree whose git objects were read-only: it created the
# file, its `git add` failed, it dropped the edit, and it exited 0.
GIT_FAILED_086 = """\
Aider v0.86.2
Model: openai/test-model with diff edit format
Git repo: ../../../mirrors/demo-app-2b6b01a3a6.git/worktrees/1 with 8 files
Repo-map: using 1024 tokens, auto refresh

I'll add the helper.

app/shout.py
```python
<<<<<<< SEARCH
=======
def shout(text):
    return text.upper()
>>>>>>> REPLACE
```
Tokens: 3.6k sent, 60 received.

app/shout.py
Cmd('git') failed due to: exit code(128)
  cmdline: git add
/tmp/workspaces/worktrees/demo-app-2b6b01a3a6/1/app/shout.py
  stderr: 'error: unable to create temporary file: Read-only file system
error: app/shout.py: failed to insert into database
error: unable to index file 'app/shout.py'
fatal: adding files failed'
"""


async def test_a_git_failure_that_made_aider_drop_its_edits_fails_the_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cli(tmp_path, monkeypatch, "aider", printing(GIT_FAILED_086))

    result = await aider(model="openai/test-model").run(make_task(tmp_path))

    assert not result.ok and result.exit_code == 0
    assert result.error == (
        "aider: aider's git command failed and aider dropped its edits (exit code(128); "
        "stderr: 'error: unable to create temporary file: Read-only file system): check that "
        "git can write this worktree's index and objects"
    )
    assert result.usage == Usage(tokens_in=3_600, tokens_out=60, cost_usd=0.0)
