"""Workspaces against the simulator over smart HTTP: open, commit, push, resume, recreate, close,
force-with-lease, leases."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from roles.workspace.errors import PushRejected, WorkspaceBusy, WorkspaceError
from roles.workspace.workspaces import Workspaces, branch_name
from roles.workspace.worktree import Worktree
from sim.core.app import RunningSim
from tests.support.sim_git import git
from tests.support.workspace import AUTHOR, PROJECT, Setup, push_as_other, workspace_setup


async def open_issue(
    ws: Workspaces, setup: Setup, iid: int = 7, title: str = "Add a greeting!", run: str = "r1"
) -> Worktree:
    return await ws.open(PROJECT, setup.url, iid, title, "main", run)


def status(wt: Worktree) -> str:
    return git("status", "--porcelain", "--untracked-files=all", cwd=wt.path).stdout


async def test_open_commit_and_push_creates_the_branch_on_the_remote(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        main = setup.main_sha()
        wt = await open_issue(ws, setup)
        assert wt.branch == "crewline/7-add-a-greeting"
        assert wt.base_sha == wt.start_sha == main and wt.remote_sha is None
        assert (wt.path / "README.md").read_text() == "# app\n" and status(wt) == ""
        assert git("symbolic-ref", "HEAD", cwd=wt.path).stdout.strip() == f"refs/heads/{wt.branch}"

        assert await ws.commit_all(wt, "Nothing yet", *AUTHOR) is None
        (wt.path / "hello.txt").write_text("hello\n")
        (wt.path / "README.md").write_text("# app\n\nSays hello.\n")
        sha = await ws.commit_all(wt, "Add hello\n\nBody line.", *AUTHOR)
        assert sha is not None and status(wt) == ""
        assert await ws.changed_files(wt) == ["README.md", "hello.txt"]
        stat = await ws.diff_stat(wt)
        assert (stat.insertions, stat.deletions, len(stat.files)) == (3, 0, 2)
        assert stat.summary() == "2 files changed, 3 insertions(+), 0 deletions(-)"
        assert await ws.commits(wt) == [(sha, "Add hello")]

        assert await ws.remote_branch_sha(PROJECT, wt.branch) is None
        assert await ws.push(wt, None) == sha
        assert setup.branch_sha(wt.branch) == sha
        assert await ws.remote_branch_sha(PROJECT, wt.branch) == sha
        log = git("log", "-1", "--format=%an <%ae>%n%B", cwd=wt.path).stdout
        assert log.startswith("crewline-bot <bot@crewline.invalid>\nAdd hello\n\nBody line.")
        assert setup.main_sha() == main  # the target branch is untouched
        await ws.close(wt)


async def test_a_second_open_resumes_from_the_pushed_work_in_progress(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        first = await open_issue(ws, setup)
        (first.path / "wip.txt").write_text("half done\n")
        sha = await ws.commit_all(first, "WIP", *AUTHOR)
        assert sha is not None
        pushed = await ws.push(first, first.remote_sha)
        await ws.close(first)
        assert not first.path.exists()

        again = await open_issue(ws, setup, run="r2")
        assert again.path == first.path and again.branch == first.branch
        assert again.start_sha == again.remote_sha == pushed
        assert again.base_sha == setup.main_sha()
        assert (again.path / "wip.txt").read_text() == "half done\n" and status(again) == ""
        assert await ws.changed_files(again) == ["wip.txt"]
        await ws.close(again)

        # The issue's title was edited since: its existing branch (and MR) carry on.
        renamed = await open_issue(ws, setup, title="Greet people politely", run="r3")
        assert renamed.branch == first.branch and renamed.start_sha == pushed
        await ws.close(renamed)


async def test_a_dirty_or_corrupt_leftover_checkout_is_recreated(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        crashed = setup.workspaces("crashed-host")
        wt = await open_issue(crashed, setup)
        (wt.path / "README.md").write_text("scribbled over\n")
        (wt.path / "junk.txt").write_text("left behind\n")
        (wt.path / "build").mkdir()
        (wt.path / "build" / "out.o").write_bytes(b"\0")
        setup.clock.advance(crashed.settings.lease_ttl_seconds + 1)  # the crashed host's lease dies

        ws = setup.workspaces("w2")
        fresh = await open_issue(ws, setup, run="r2")
        assert fresh.path == wt.path and status(fresh) == ""
        assert (fresh.path / "README.md").read_text() == "# app\n"
        assert not (fresh.path / "junk.txt").exists() and not (fresh.path / "build").exists()

        # A checkout whose .git link is garbage is not a repository any more: recreated too.
        setup.clock.advance(ws.settings.lease_ttl_seconds + 1)
        (fresh.path / ".git").write_text("gitdir: /nowhere\n")
        third = await setup.workspaces("w3").open(
            PROJECT, setup.url, 7, "Add a greeting!", "main", "r3"
        )
        assert status(third) == "" and (third.path / "README.md").read_text() == "# app\n"


async def test_close_removes_everything_after_an_exception_and_twice(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt: Worktree | None = None
        with pytest.raises(RuntimeError, match="agent blew up"):
            try:
                wt = await open_issue(ws, setup)
                (wt.path / "half.txt").write_text("x\n")
                await ws.commit_all(wt, "half", *AUTHOR)
                raise RuntimeError("agent blew up")
            finally:
                assert wt is not None
                await ws.close(wt)
        assert not wt.path.exists()
        assert await setup.leases.get(f"workspace:{PROJECT}:7") is None
        mirror_branches = git(
            "--git-dir", str(next((ws.root / "mirrors").glob("*.git"))), "branch", "--list"
        ).stdout
        assert mirror_branches == ""  # the local branch went with the checkout
        await ws.close(wt)  # a second close is harmless
        with pytest.raises(WorkspaceError, match="not open here"):
            await ws.commit_all(wt, "after close", *AUTHOR)


async def test_a_failed_open_leaves_no_checkout_and_no_lease(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        with pytest.raises(WorkspaceError, match="target branch 'release' does not exist"):
            await ws.open(PROJECT, setup.url, 3, "Ship it", "release", "r1")
        assert not (ws.root / "worktrees").exists() or not any((ws.root / "worktrees").rglob("3*"))
        assert await setup.leases.get(f"workspace:{PROJECT}:3") is None
        # Nothing was left behind that would stop the next attempt.
        wt = await ws.open(PROJECT, setup.url, 3, "Ship it", "main", "r2")
        await ws.close(wt)


async def test_force_with_lease_refuses_to_overwrite_a_moved_remote_branch(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await open_issue(ws, setup)
        (wt.path / "a.txt").write_text("a\n")
        await ws.commit_all(wt, "a", *AUTHOR)
        first = await ws.push(wt, None)
        other = push_as_other(sim, tmp_path / "other", wt.branch, "b.txt", "b\n")

        (wt.path / "c.txt").write_text("c\n")
        ours = await ws.commit_all(wt, "c", *AUTHOR)
        with pytest.raises(PushRejected) as moved:
            await ws.push(wt, first)
        assert moved.value.stale and moved.value.reason == "stale info"
        with pytest.raises(PushRejected) as exists:
            await ws.push(wt, None)  # "must not exist yet" fails as well
        assert exists.value.stale
        assert setup.branch_sha(wt.branch) == other

        assert await ws.push(wt, other) == ours  # overwriting the sha we now expect is allowed
        assert setup.branch_sha(wt.branch) == ours
        with pytest.raises(ValueError, match="40-character"):
            await ws.push(wt, "HEAD")
        await ws.close(wt)


async def test_the_lease_keeps_a_second_worker_out(sim: RunningSim, tmp_path: Path) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        one, two = setup.workspaces("w1"), setup.workspaces("w2")
        results = await asyncio.gather(
            open_issue(one, setup), open_issue(two, setup), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, Worktree)]
        refused = [r for r in results if isinstance(r, WorkspaceBusy)]
        assert len(opened) == 1 and len(refused) == 1, results
        assert "leased by w" in str(refused[0])
        holder = one if results[0] is opened[0] else two
        other = two if holder is one else one
        with pytest.raises(WorkspaceBusy):
            await open_issue(other, setup, run="r2")
        assert status(opened[0]) == ""  # the refused open did not touch the checkout

        await holder.close(opened[0])
        wt = await open_issue(other, setup, run="r3")
        assert await other.renew(wt)
        await other.close(wt)
        assert not await other.renew(wt)


async def test_pushing_to_a_protected_branch_is_a_push_rejection(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 4, "Main", "main", "r1")
        # Simulate a branch name that GitLab protects by pointing the worktree at main itself.
        protected = dataclasses.replace(wt, branch="main")
        (wt.path / "x.txt").write_text("x\n")
        await ws.commit_all(wt, "x", *AUTHOR)
        git("branch", "-f", "main", "HEAD", cwd=wt.path)
        with pytest.raises(PushRejected) as refused:
            await ws.push(protected, setup.main_sha())
        assert not refused.value.stale
        assert "pre-receive hook declined" in refused.value.reason
        assert "not allowed to push code to protected branches" in str(refused.value)
        await ws.close(wt)


def test_branch_names_are_deterministic_ascii_slugs() -> None:
    long_title = "Refactor the very long module name that keeps going and going"
    assert (
        branch_name(12, "Fix: crash in Ünïcode paths!") == "crewline/12-fix-crash-in-unicode-paths"
    )
    assert branch_name(12, long_title) == branch_name(12, long_title)
    slug = branch_name(12, long_title).removeprefix("crewline/12-")
    assert slug == "refactor-the-very-long-module-name-that" and len(slug) <= 40
    assert branch_name(3, "日本語のタイトル") == "crewline/3-issue"
    assert branch_name(3, "  --Hello__World..  ") == "crewline/3-hello-world"
    for title in ("a/../b", "x.lock", "@{u}", "end."):
        name = branch_name(5, title)
        assert git("check-ref-format", "--branch", name, check=False).returncode == 0, name
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="positive integer"):
            branch_name(bad, "x")


async def test_several_issues_of_one_project_open_at_once_on_the_shared_mirror(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        opened = await asyncio.gather(
            *(open_issue(ws, setup, iid=iid, title=f"Issue {iid}") for iid in (41, 42, 43))
        )
        assert len({wt.path for wt in opened}) == 3
        assert len(list((ws.root / "mirrors").glob("*.git"))) == 1
        for wt in opened:
            (wt.path / f"{wt.iid}.txt").write_text("x\n")
            await ws.commit_all(wt, f"Work on {wt.iid}", *AUTHOR)
        pushed = await asyncio.gather(*(ws.push(wt, None) for wt in opened))
        assert [setup.branch_sha(wt.branch) for wt in opened] == pushed
        await asyncio.gather(*(ws.close(wt) for wt in opened))
        assert not any(wt.path.exists() for wt in opened)


async def test_open_refuses_bad_arguments_before_touching_anything(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        with pytest.raises(ValueError, match="project path like group/app"):
            await ws.open("app", setup.url, 1, "t", "main", "r1")
        with pytest.raises(ValueError, match="a run key"):
            await ws.open(PROJECT, setup.url, 1, "t", "main", " ")
        with pytest.raises(ValueError, match="positive integer"):
            await ws.open(PROJECT, setup.url, 0, "t", "main", "r1")
        assert not ws.root.exists() and await setup.leases.get(f"workspace:{PROJECT}:1") is None


async def test_an_open_worktree_keeps_its_lease_past_one_ttl(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ttl = 0.3
        holder, other = setup.workspaces("w1", lease_ttl_seconds=ttl), setup.workspaces("w2")
        wt = await open_issue(holder, setup)
        for _ in range(4):  # 4 x 0.2 s of lease time: well past the first TTL
            setup.clock.advance(0.2)
            await asyncio.sleep(0.25)  # the renewer runs every ttl/3 = 0.1 s
        with pytest.raises(WorkspaceBusy):
            await open_issue(other, setup, run="r2")
        (wt.path / "still-mine.txt").write_text("x\n")
        assert await holder.commit_all(wt, "Still working", *AUTHOR) is not None
        await holder.close(wt)
        assert await setup.leases.get(f"workspace:{PROJECT}:7") is None


async def test_a_worktree_whose_lease_was_taken_over_refuses_further_work(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        holder = setup.workspaces("w1", lease_ttl_seconds=0.3)
        wt = await open_issue(holder, setup)
        key = f"workspace:{PROJECT}:7"
        setup.clock.advance(1.0)  # expired before the renewer's first turn
        taken = await setup.leases.acquire(key, "w2", 60)
        assert taken is not None
        await asyncio.sleep(0.3)
        with pytest.raises(WorkspaceError, match="not open here"):
            await holder.commit_all(wt, "Too late", *AUTHOR)
        await holder.close(wt)  # leaves the new holder's checkout and lease alone
        assert wt.path.exists()
        current = await setup.leases.get(key)
        assert current is not None and current.holder == "w2"
