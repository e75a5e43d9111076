"""The scene of the sandbox tests: a host's secrets, another issue's work and transcripts next
to an agent's worktree, an agent that tries to reach them, and bwrap configured over it."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.app import build_agents, hidden_paths
from bot.config import CrewlineConfig, Secrets
from roles.agents.base import AgentTask, TaskKind
from roles.sandbox import (
    Sandbox,
    SandboxSettings,
    select_sandbox,
)
from roles.workspace.workspaces import Workspaces
from roles.workspace.worktree import Worktree
from sim.core.app import RunningSim
from tests.support.workspace import PROJECT, workspace_setup

ESCAPE = Path(__file__).resolve().parent.parent / "fake_agents" / "escape.py"


TOKEN = "glpat-sandbox-escape-0123456789"


FILE_SECRET = "whsec-from-a-file-9876543210"


OTHER_WORK = "uncommitted work of issue 2"


OTHER_RUN = "transcript of issue 2's run"


# crewline as started by a supervisor: the token in its initial environment, a secret in a
# file; it reads them (and drops them from its environment), says what a child it starts
# afterwards inherits, then stays up while the agent runs.
CREWLINE = """
import json, os, subprocess, sys
from bot.config import load_secrets
secrets = load_secrets()
child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
print(json.dumps({"read": secrets.all_values(), "child_env": child}), flush=True)
sys.stdin.read()
"""


@dataclass
class Scene:
    crewline_pid: int
    config: CrewlineConfig
    secrets: Secrets
    workspaces: Workspaces
    mine: Worktree
    other: Worktree
    runs_dir: Path


@asynccontextmanager
async def scene(
    sim: RunningSim, tmp_path: Path, crewline_pid: int, secret_file: Path
) -> AsyncIterator[Scene]:
    async with workspace_setup(sim, tmp_path) as setup:
        workspaces = setup.workspaces()
        mine = await workspaces.open(PROJECT, setup.url, 1, "mine", "main", "run-1")
        other = await workspaces.open(PROJECT, setup.url, 2, "other", "main", "run-2")
        (other.path / "work.txt").write_text(OTHER_WORK, encoding="utf-8")
        runs_dir = tmp_path / "runs"
        (runs_dir / "issue-2").mkdir(parents=True)
        (runs_dir / "issue-2" / "plan.log").write_text(OTHER_RUN, encoding="utf-8")
        config = CrewlineConfig.model_validate(
            {
                "gitlab": {"url": sim.base_url},
                "projects": [{"path": PROJECT}],
                "storage": {"path": str(tmp_path / "leases.sqlite3")},
                "workspaces": {"root": str(setup.root)},
                "runs_dir": str(runs_dir),
                "roles": {"agent": "escape"},
                "agents": {"escape": {"kind": "command", "command": sys.executable}},
            }
        )
        secrets = Secrets(webhook_secret_file=secret_file)
        try:
            yield Scene(crewline_pid, config, secrets, workspaces, mine, other, runs_dir)
        finally:
            await workspaces.close(other)
            await workspaces.close(mine)


async def escape_attempt(scene: Scene, sandbox: Sandbox) -> dict[str, str]:
    """Run the escape script as the dev role's agent, built by the composition root."""
    args = [
        str(ESCAPE),
        str(scene.crewline_pid),
        str(scene.secrets.webhook_secret_file),
        str(scene.config.storage.path),
        str(scene.other.path / "work.txt"),
        str(scene.runs_dir / "issue-2" / "plan.log"),
    ]
    escape = scene.config.agents["escape"].model_copy(update={"args": args})
    config = scene.config.model_copy(update={"agents": {"escape": escape}})
    agents, _ = build_agents(config, sandbox)
    task = AgentTask(
        kind=TaskKind.IMPLEMENT,
        prompt="Read everything you can.",
        workspace=scene.mine.path,
        transcript_dir=scene.runs_dir / "issue-1",
    )
    result = await agents["dev"].run(task)
    assert result.ok, result.error
    found: dict[str, str] = json.loads(result.output)
    return found


def configured_bwrap(scene: Scene) -> Sandbox:
    selected = select_sandbox(
        SandboxSettings(backend="bwrap"), hidden=hidden_paths(scene.config, scene.secrets)
    )
    assert selected.warning is None
    return selected.sandbox


def running_with(marker: str) -> list[bytes]:
    """The command lines of this machine's processes that contain ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline)
    return found
