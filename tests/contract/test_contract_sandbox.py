"""Each real CLI starts inside the default sandbox, launched as its adapter launches it (its
allow-listed environment, a linked git worktree as working directory, installed outside PATH
and HOME as the contract set-up installs it): the quick check that catches a sandbox change
which would leave a CLI unable to start (Codex, say, losing the npm package that holds its
native binary) before a full goal runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from roles.agents.cli import CliAgent
from roles.agents.process import agent_environment, run_process
from roles.agents.registry import build_agent
from roles.settings import AgentSettings
from tests.contract import clis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def linked_worktree(base: Path) -> Path:
    repository = base / "repository"
    worktree = base / "worktree"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(repository)], check=True)
    subprocess.run([*git, "-C", str(repository), "commit", "-q", "--allow-empty", "-m", "start"])
    subprocess.run(
        [*git, "-C", str(repository), "worktree", "add", "-q", "-b", "work", str(worktree)],
        check=True,
    )
    return worktree


@pytest.mark.parametrize("kind", ["aider", "codex", "claude", "gemini"])
async def test_the_real_cli_starts_inside_the_default_sandbox(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable = clis.aider() if kind == "aider" else clis.npm_cli(kind)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    agent = build_agent(
        kind, AgentSettings(kind=kind, command=str(executable)), clis.default_sandbox()
    )
    assert isinstance(agent, CliAgent)
    worktree = linked_worktree(tmp_path)

    ran = await run_process(
        [agent.executable, "--version"],
        cwd=worktree,
        env=agent_environment(agent.env_allow),
        transcript=tmp_path / "version.log",
        timeout_seconds=300,
        sandbox=agent.sandbox,
    )

    assert ran.exit_code == 0, (ran.stdout, ran.stderr_tail)
    assert clis.tested(kind) in ran.stdout
    assert "sandbox: bwrap" in (tmp_path / "version.log").read_text()
