"""Rebasing a workspace onto its moved target branch: clean, with conflicts resolved by "an
agent", with markers left in, and aborted."""

from __future__ import annotations

from pathlib import Path

import pytest

from roles.workspace.errors import WorkspaceError
from roles.workspace.workspaces import Workspaces
from roles.workspace.worktree import Worktree
from sim.core.app import RunningSim
from tests.support.sim_git import git
from tests.support.workspace import AUTHOR, PROJECT, Setup, workspace_setup


async def branch_with_readme_change(ws: Workspaces, setup: Setup, text: str) -> Worktree:
    wt = await ws.open(PROJECT, setup.url, 11, "Reword the README", "main", "r1")
    (wt.path / "README.md").write_text(text)
    (wt.path / "notes.txt").write_text("ours\n")
    assert await ws.commit_all(wt, "Reword README", *AUTHOR) is not None
    return wt


def subjects(wt: Worktree) -> list[str]:
    return git("log", "--format=%s", cwd=wt.path).stdout.split("\n")[:-1]


async def test_a_clean_rebase_puts_the_branch_on_the_new_target_and_pushes(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await branch_with_readme_change(ws, setup, "# app\n\nReworded.\n")
        pushed = await ws.push(wt, None)
        moved = setup.commit_on("main", "CHANGELOG.md", "- something\n")

        result = await ws.rebase(wt, "main")
        assert result.ok and result.conflicts == [] and result.head == await ws.head(wt)
        assert (
            git("merge-base", "--is-ancestor", moved, "HEAD", cwd=wt.path, check=False).returncode
            == 0
        )
        assert subjects(wt) == ["Reword README", "Change CHANGELOG.md", "Initial commit"]
        # Upstream's CHANGELOG.md is not the branch's own change, nor its commit.
        assert await ws.changed_files(wt) == ["README.md", "notes.txt"]
        assert [subject for _, subject in await ws.commits(wt)] == ["Reword README"]
        assert len((await ws.diff_stat(wt)).files) == 2
        assert await ws.push(wt, pushed) == result.head
        assert setup.branch_sha(wt.branch) == result.head
        await ws.close(wt)


async def test_a_conflict_stays_in_progress_until_resolved_then_continues(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await branch_with_readme_change(ws, setup, "# app by crewline\n")
        setup.commit_on("main", "README.md", "# app by a human\n")

        stopped = await ws.rebase(wt, "main")
        assert not stopped.ok and stopped.conflicts == ["README.md"] and stopped.head is None
        assert "<<<<<<<" in (wt.path / "README.md").read_text()
        with pytest.raises(WorkspaceError, match="rebase is in progress"):
            await ws.push(wt, None)
        with pytest.raises(WorkspaceError, match="already in progress"):
            await ws.rebase(wt, "main")

        # Continuing with the markers still in the file is refused, the rebase stays.
        again = await ws.continue_rebase(wt)
        assert not again.ok and again.conflicts == ["README.md"]

        (wt.path / "README.md").write_text("# app by a human and crewline\n")
        done = await ws.continue_rebase(wt)
        assert done.ok and done.head == await ws.head(wt)
        assert subjects(wt) == ["Reword README", "Change README.md", "Initial commit"]
        assert (wt.path / "README.md").read_text() == "# app by a human and crewline\n"
        assert git("status", "--porcelain", cwd=wt.path).stdout == ""
        assert not await ws.abort_rebase(wt)  # nothing left to abort
        with pytest.raises(WorkspaceError, match="no rebase is in progress"):
            await ws.continue_rebase(wt)
        await ws.close(wt)


async def test_aborting_restores_the_branch_and_a_taken_over_resolution_is_skipped(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 12, "Title", "main", "r1")
        (wt.path / "README.md").write_text("# ours\n")
        before = await ws.commit_all(wt, "Ours", *AUTHOR)
        setup.commit_on("main", "README.md", "# theirs\n")

        assert not (await ws.rebase(wt, "main")).ok
        assert await ws.abort_rebase(wt)
        assert await ws.head(wt) == before and (wt.path / "README.md").read_text() == "# ours\n"

        # Resolving by taking upstream's side leaves our commit empty: it is dropped.
        assert not (await ws.rebase(wt, "main")).ok
        (wt.path / "README.md").write_text("# theirs\n")
        done = await ws.continue_rebase(wt)
        assert done.ok and subjects(wt) == ["Change README.md", "Initial commit"]

        (wt.path / "dirty.txt").write_text("uncommitted\n")
        with pytest.raises(WorkspaceError, match="uncommitted changes"):
            await ws.rebase(wt, "main")
        with pytest.raises(WorkspaceError, match="'nope' does not exist"):
            await ws.rebase(wt, "nope")
        await ws.close(wt)
