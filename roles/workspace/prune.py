"""Deleting worktrees cleanly, and keeping the workspace root under its disk budget.

Pruning order: checkouts nobody uses, least recently used first (a checkout without its record
is debris and goes first), then mirrors no checkout depends on. A checkout is "in use" when its
lease is live: the pruner takes that lease itself before deleting, so an ``open`` of the same
issue cannot start halfway through.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roles.workspace.gitcmd import Git
from roles.workspace.layout import (
    Layout,
    WorktreeRecord,
    lease_key,
    mirror_lock,
    project_dirname,
    try_lock,
)
from storage.leases import LeaseStore

log = logging.getLogger(__name__)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return

    def make_writable(func: Callable[..., Any], failed: str, _info: Any) -> None:
        # An agent may leave read-only directories behind; crewline owns the tree, so force it.
        os.chmod(os.path.dirname(failed), stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
        func(failed)

    shutil.rmtree(path, onerror=make_writable)


async def remove_tree(path: Path) -> None:
    """Delete ``path`` (file, link or directory tree) if it exists, off the event loop."""
    await asyncio.to_thread(_rmtree, path)


def disk_usage(path: Path) -> int:
    """Bytes used by the files under ``path`` (apparent sizes, links not followed)."""
    total, pending = 0, [path]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue  # removed while we looked
        except (FileNotFoundError, NotADirectoryError):
            if current == path and path.is_file():
                total += path.stat().st_size
    return total


@dataclass(frozen=True)
class _Candidate:
    last_used: float
    dirname: str
    iid: int
    project: str | None  # None: a checkout without a readable record (debris)


class Pruner:
    def __init__(
        self,
        layout: Layout,
        git: Git,
        leases: LeaseStore,
        worker: str,
        max_disk_mb: float,
        lock_timeout: float,
    ) -> None:
        self._layout = layout
        self._git = git
        self._leases = leases
        self._holder = f"{worker}:prune"
        self._budget = int(max_disk_mb * 1024 * 1024)
        self._lock_timeout = lock_timeout

    async def remove_checkout(self, mirror: Path, checkout: Path) -> None:
        """Delete a checkout and forget it in the mirror; call with the mirror lock."""
        await remove_tree(checkout)
        if await asyncio.to_thread(mirror.exists):
            await self._git.run(["worktree", "prune"], cwd=self._layout.root, git_dir=mirror)

    async def remove_worktree(self, project_path: str, iid: int) -> None:
        """Delete issue ``iid``'s checkout, its local branches and its record; call with the
        mirror lock."""
        await self._remove(project_dirname(project_path), iid)

    async def _remove(self, dirname: str, iid: int) -> None:
        mirror = self._layout.mirror_named(dirname)
        await self.remove_checkout(mirror, self._layout.worktrees / dirname / str(iid))
        if mirror.exists():
            # Local branches exist only for checkouts; the remote keeps whatever was pushed.
            refs = await self._git.out(
                ["for-each-ref", "--format=%(refname)", f"refs/heads/crewline/{iid}-*"],
                cwd=self._layout.root,
                git_dir=mirror,
            )
            if refs:
                commands = "".join(f"delete {ref}\n" for ref in refs.splitlines())
                await self._git.run(
                    ["update-ref", "--stdin"],
                    cwd=self._layout.root,
                    git_dir=mirror,
                    stdin=commands.encode(),
                )
        (self._layout.worktrees / dirname / f"{iid}.json").unlink(missing_ok=True)

    async def prune(self) -> list[Path]:
        usage = await asyncio.to_thread(disk_usage, self._layout.root)
        if usage <= self._budget:
            return []
        removed: list[Path] = []
        for candidate in await asyncio.to_thread(self._candidates):
            if usage <= self._budget:
                break
            checkout = self._layout.worktrees / candidate.dirname / str(candidate.iid)
            size = await asyncio.to_thread(disk_usage, checkout)
            if await self._prune_checkout(candidate):
                usage -= size
                removed.append(checkout)
        if usage > self._budget:
            for mirror in await asyncio.to_thread(self._idle_mirrors):
                if usage <= self._budget:
                    break
                size = await asyncio.to_thread(disk_usage, mirror)
                if await self._prune_mirror(mirror):
                    usage -= size
                    removed.append(mirror)
        if usage > self._budget:
            log.warning(
                "workspaces use %.1f MB, over the %.1f MB budget, with everything left in use",
                usage / 2**20,
                self._budget / 2**20,
            )
        return removed

    async def _prune_checkout(self, candidate: _Candidate) -> bool:
        lock = self._layout.lock_named(candidate.dirname)
        if candidate.project is None:
            async with mirror_lock(lock, self._lock_timeout):
                await self._remove(candidate.dirname, candidate.iid)
            return True
        key = lease_key(candidate.project, candidate.iid)
        lease = await self._leases.acquire(key, self._holder, self._lock_timeout)
        if lease is None:
            return False  # a run holds it
        try:
            async with mirror_lock(lock, self._lock_timeout):
                await self._remove(candidate.dirname, candidate.iid)
        finally:
            await self._leases.release(lease)
        log.info("pruned workspace %s#%s", candidate.project, candidate.iid)
        return True

    async def _prune_mirror(self, mirror: Path) -> bool:
        dirname = mirror.name.removesuffix(".git")
        descriptor = try_lock(self._layout.lock_named(dirname))
        if descriptor is None:
            return False
        try:
            if self._has_worktrees(dirname):
                return False
            await remove_tree(mirror)
        finally:
            os.close(descriptor)
        log.info("pruned mirror %s", mirror.name)
        return True

    def _has_worktrees(self, dirname: str) -> bool:
        folder = self._layout.worktrees / dirname
        return folder.is_dir() and any(folder.iterdir())

    def _candidates(self) -> list[_Candidate]:
        found: list[_Candidate] = []
        if not self._layout.worktrees.is_dir():
            return found
        for folder in self._layout.worktrees.iterdir():
            if not folder.is_dir():
                continue
            iids = {
                int(name.removesuffix(".json"))
                for name in os.listdir(folder)
                if name.removesuffix(".json").isdigit()
            }
            for iid in iids:
                record = WorktreeRecord.read(folder / f"{iid}.json")
                found.append(
                    _Candidate(
                        last_used=record.last_used if record else -math.inf,
                        dirname=folder.name,
                        iid=iid,
                        project=record.project if record else None,
                    )
                )
        return sorted(found, key=lambda c: (c.last_used, c.dirname, c.iid))

    def _idle_mirrors(self) -> list[Path]:
        if not self._layout.mirrors.is_dir():
            return []
        mirrors = [
            path
            for path in self._layout.mirrors.glob("*.git")
            if not self._has_worktrees(path.name.removesuffix(".git"))
        ]

        def last_fetch(path: Path) -> float:
            fetched = path / "FETCH_HEAD"
            return (fetched if fetched.exists() else path).stat().st_mtime

        return sorted(mirrors, key=last_fetch)
