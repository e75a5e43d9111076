"""Set-up for the workspace tests: the simulator's demo/app project (main holds README.md and is
protected), a real SQLite lease store on a manual clock, and Workspaces over a temp root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from roles.workspace.settings import WorkspaceSettings
from roles.workspace.workspaces import Workspaces
from sim.core.app import RunningSim
from storage import Database, LeaseStore
from tests.support.sim_git import BOT_TOKEN, MAINTAINER_TOKEN, client, clone_url, git, make_project
from tests.support.storage import ManualClock

PROJECT = "demo/app"
AUTHOR = ("crewline-bot", "bot@crewline.invalid")


@dataclass
class Setup:
    sim: RunningSim
    project_id: int
    url: str
    root: Path
    leases: LeaseStore
    clock: ManualClock

    def workspaces(self, worker: str = "w1", **settings: object) -> Workspaces:
        config = WorkspaceSettings(root=self.root, **settings)  # type: ignore[arg-type]
        return Workspaces(config, self.leases, worker, BOT_TOKEN, clock=self.clock)

    def main_sha(self) -> str:
        project = client(self.sim).projects.get(self.project_id)
        return str(project.branches.get("main").commit["id"])

    def branch_sha(self, branch: str) -> str:
        project = client(self.sim).projects.get(self.project_id)
        return str(project.branches.get(branch).commit["id"])

    def commit_on(self, branch: str, path: str, content: str, token: str = MAINTAINER_TOKEN) -> str:
        """Another user commits ``path`` on ``branch`` through the API (the remote moves)."""
        project = client(self.sim, token).projects.get(self.project_id)
        files = {f["path"] for f in project.repository_tree(ref=branch, get_all=True)}
        action = "update" if path in files else "create"
        commit = project.commits.create(
            {
                "branch": branch,
                "commit_message": f"Change {path}",
                "actions": [{"action": action, "file_path": path, "content": content}],
            }
        )
        return str(commit.id)


@asynccontextmanager
async def workspace_setup(sim: RunningSim, tmp_path: Path) -> AsyncIterator[Setup]:
    project_id = make_project(sim, PROJECT)
    db = await Database.open(tmp_path / "leases.sqlite3")
    clock = ManualClock()
    try:
        yield Setup(
            sim=sim,
            project_id=project_id,
            url=f"{sim.base_url}/{PROJECT}.git",
            root=tmp_path / "workspaces",
            leases=LeaseStore(db, clock),
            clock=clock,
        )
    finally:
        await db.close()


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def push_as_other(sim: RunningSim, work: Path, branch: str, name: str, content: str) -> str:
    """A second clone (as the bot, outside crewline) commits ``name`` on ``branch`` and pushes."""
    git("clone", "--quiet", "--branch", branch, clone_url(sim, BOT_TOKEN, PROJECT), str(work))
    (work / name).write_text(content)
    git("add", name, cwd=work)
    git("commit", "--quiet", "-m", f"Other {name}", cwd=work)
    git("push", "--quiet", "origin", branch, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()
