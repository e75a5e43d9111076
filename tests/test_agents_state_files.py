"""Coding agents' own state files never reach a branch: the mirror's info/exclude keeps them
untracked, so crewline's ``git add --all`` commits only the agent's real work."""

from __future__ import annotations

from pathlib import Path

from roles.agents.registry import ADAPTERS, AGENT_STATE_FILES
from sim.core.app import RunningSim
from tests.support.sim_git import git
from tests.support.workspace import AUTHOR, PROJECT, workspace_setup

# What the real CLIs leave in a worktree (seen with aider 0.86.2, Claude Code 2.1, Gemini 0.61).
STATE_FILES = {
    ".aider.tags.cache.v4/cache.db": b"SQLite format 3\x00binary",
    ".aider.chat.history.md": b"# aider chat started\n",
    ".claude/settings.local.json": b'{"permissions": {"allow": []}}\n',
    "CLAUDE.local.md": b"notes\n",
    ".gemini/settings.json": b"{}\n",
    ".codex/config.toml": b'model = "x"\n',
}


def test_every_cli_adapter_but_the_generic_command_declares_state_files_and_versions() -> None:
    for kind, adapter in ADAPTERS.items():
        if kind == "command":
            assert adapter.state_files == () and adapter.tested_versions is None
            continue
        assert adapter.state_files, kind
        assert adapter.tested_versions is not None, kind
        assert adapter.tested_versions.accepts(adapter.tested_versions.tested), kind
    assert ".aider*" in AGENT_STATE_FILES


async def test_agent_state_files_are_never_committed_or_pushed(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 7, "Add a greeting", "main", "r1")
        for name, content in STATE_FILES.items():
            (wt.path / name).parent.mkdir(parents=True, exist_ok=True)
            (wt.path / name).write_bytes(content)
        (wt.path / "hello.py").write_text("print('hello')\n")

        sha = await ws.commit_all(wt, "Add hello", *AUTHOR)
        assert sha is not None
        assert await ws.changed_files(wt) == ["hello.py"]
        await ws.push(wt, None)
        remote = git("ls-tree", "-r", "--name-only", sha, cwd=wt.path).stdout.split()
        assert sorted(remote) == ["README.md", "hello.py"]
        await ws.close(wt)

        # A reopened worktree (next attempt) still excludes them: the exclude is rewritten.
        again = await ws.open(PROJECT, setup.url, 7, "Add a greeting", "main", "r2")
        (again.path / ".aider.tags.cache.v4").mkdir()
        (again.path / ".aider.tags.cache.v4" / "cache.db").write_bytes(b"x")
        assert await ws.commit_all(again, "Nothing of the agent's", *AUTHOR) is None
        await ws.close(again)
