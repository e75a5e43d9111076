"""The disk budget: leftovers of crashed runs are pruned least recently used first, a leased
workspace never, and mirrors only once no checkout needs them."""

from __future__ import annotations

from pathlib import Path

from roles.workspace.prune import disk_usage
from roles.workspace.worktree import Worktree
from sim.core.app import RunningSim
from tests.support.sim_git import git
from tests.support.workspace import AUTHOR, PROJECT, workspace_setup


async def test_prune_removes_the_oldest_unleased_checkouts_first(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        crashed = setup.workspaces("crashed", lease_ttl_seconds=60)
        leftovers: list[Worktree] = []
        for iid in (21, 22, 23):
            wt = await crashed.open(PROJECT, setup.url, iid, f"Issue {iid}", "main", f"r{iid}")
            (wt.path / "payload.bin").write_bytes(bytes(200_000))  # make sizes matter
            leftovers.append(wt)
            setup.clock.advance(10)
        # Issue 21 was used last (a commit touches it), so 22 is now the oldest.
        (leftovers[0].path / "late.txt").write_text("late\n")
        await crashed.commit_all(leftovers[0], "late", *AUTHOR)
        setup.clock.advance(61)  # the crashed worker's leases are dead; nobody closed anything

        live_ws = setup.workspaces("alive")
        live = await live_ws.open(PROJECT, setup.url, 24, "Busy", "main", "r24")
        (live.path / "payload.bin").write_bytes(bytes(200_000))
        debris = live_ws.root / "worktrees" / live.path.parent.name / "99"
        debris.mkdir()
        (debris / "stray.bin").write_bytes(bytes(1000))

        total = disk_usage(live_ws.root)
        oldest = leftovers[1]
        budget_bytes = total - disk_usage(debris) - disk_usage(oldest.path)
        pruner = setup.workspaces("janitor", max_disk_mb=budget_bytes / 2**20)
        removed = await pruner.prune()
        assert removed == [debris, oldest.path]
        assert [wt.path.exists() for wt in leftovers] == [True, False, True]
        assert disk_usage(live_ws.root) <= budget_bytes
        assert await pruner.prune() == []  # under budget now: nothing more to do

        everything = setup.workspaces("janitor", max_disk_mb=0)
        assert await everything.prune() == [leftovers[2].path, leftovers[0].path]
        assert (live.path / "payload.bin").stat().st_size == 200_000  # the leased one is intact
        mirror = next((live_ws.root / "mirrors").glob("*.git"))
        assert mirror.exists()  # the live checkout needs it
        branches = git("--git-dir", str(mirror), "branch", "--format=%(refname:short)").stdout
        assert branches.split() == [live.branch]
        worktrees = git("--git-dir", str(mirror), "worktree", "list", "--porcelain").stdout
        assert str(live.path) in worktrees and str(oldest.path) not in worktrees

        # Once the last checkout is closed the mirror itself may go.
        await live_ws.close(live)
        assert await everything.prune() == [mirror]
        assert not mirror.exists()
        again = await live_ws.open(PROJECT, setup.url, 24, "Busy", "main", "r25")
        assert (again.path / "README.md").exists()  # a pruned mirror is simply cloned again
        await live_ws.close(again)


async def test_close_prunes_down_to_the_budget(sim: RunningSim, tmp_path: Path) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        crashed = setup.workspaces("crashed", lease_ttl_seconds=5)
        stale = await crashed.open(PROJECT, setup.url, 31, "Stale", "main", "r1")
        setup.clock.advance(6)
        ws = setup.workspaces("w2", max_disk_mb=0)
        wt = await ws.open(PROJECT, setup.url, 32, "Fresh", "main", "r2")
        assert stale.path.exists()
        await ws.close(wt)
        assert not stale.path.exists() and not wt.path.exists()
        assert not list((ws.root / "mirrors").glob("*.git"))
