"""A project's bare mirror and the checkouts made from it: the base of
:class:`roles.workspace.workspaces.Workspaces`. The mirror's config is rewritten before every
network command, so nothing an agent wrote there runs next to the token."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from pydantic import SecretStr

from roles.agents.registry import AGENT_STATE_FILES
from roles.workspace.errors import WorkspaceError
from roles.workspace.gitcmd import Git
from roles.workspace.layout import (
    Layout,
    WorktreeRecord,
    canonical_config,
    exclude_file,
    mirror_lock,
)
from roles.workspace.prune import Pruner, remove_tree
from roles.workspace.settings import WorkspaceSettings
from roles.workspace.worktree import Worktree
from storage.clock import Clock
from storage.leases import Lease, LeaseStore

log = logging.getLogger(__name__)

# A fetch or ls-remote changes nothing: a failed one is simply tried again. A push is tried
# again only after the remote branch shows it was not performed (docs/decisions/0015).
NETWORK_READ_ATTEMPTS = 4
PUSH_ATTEMPTS = 3


def _write_exclude(mirror: Path) -> None:
    (mirror / "info").mkdir(exist_ok=True)
    (mirror / "info" / "exclude").write_text(exclude_file(AGENT_STATE_FILES), encoding="utf-8")


class WorkspaceBase:
    """The mirrors and checkouts under the root: a mirror's config rewritten before each
    network command, fetched, its branches read; checkouts recreated and discarded."""

    def __init__(
        self,
        settings: WorkspaceSettings,
        leases: LeaseStore,
        worker: str,
        token: str | SecretStr,
        *,
        clock: Clock = time.time,
    ) -> None:
        if not worker.strip():
            raise ValueError("worker must name this crewline process (e.g. host-pid)")
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self.settings = settings
        self._layout = Layout(settings.root.absolute())
        self._leases = leases
        self._worker = worker
        self._clock = clock
        self._git = Git(self._layout.home, settings.git_timeout_seconds, secret)
        self._held: dict[Path, Lease] = {}
        self._renewers: dict[Path, asyncio.Task[None]] = {}
        self._urls: dict[str, str] = {}
        self._pruner = Pruner(
            self._layout, self._git, leases, worker, settings.max_disk_mb, self._lock_timeout
        )

    @property
    def root(self) -> Path:
        return self._layout.root

    @property
    def _lock_timeout(self) -> float:
        # A writer holds the lock for at most a couple of git commands.
        return 2 * self.settings.git_timeout_seconds

    def _require_open(self, wt: Worktree) -> None:
        if wt.path not in self._held:
            raise WorkspaceError(
                f"workspace {wt.project}#{wt.iid} is not open here (closed, or opened by "
                "another Workspaces); open it again"
            )

    async def _since(self, wt: Worktree, since: str | None) -> str:
        if since is not None:
            return since
        target = f"refs/remotes/origin/{wt.target_branch}"
        found = await self._git.run(
            ["rev-parse", "--verify", "--quiet", f"{target}^{{commit}}"],
            cwd=wt.path,
            ok_codes=(0, 1),
        )
        return target if found.exit_code == 0 else wt.base_sha

    def _touch(self, wt: Worktree) -> None:
        record = WorktreeRecord(wt.project, wt.iid, wt.branch, wt.run_key, self._clock())
        record.write(self._layout.record(wt.project, wt.iid))

    async def _configure(self, project_path: str, clone_url: str) -> Path:
        """Create the mirror if needed and (re)write its config; call with the mirror lock."""
        mirror = self._layout.mirror(project_path)
        if mirror.exists():
            (mirror / "config").write_text(canonical_config(clone_url), encoding="utf-8")
            probe = await self._git.run(
                ["rev-parse", "--is-bare-repository"],
                cwd=self.root,
                git_dir=mirror,
                ok_codes=range(256),
            )
            if probe.stdout.strip() == "true":
                _write_exclude(mirror)
                return mirror
            log.warning("mirror %s is corrupt (%s); recloning", mirror, probe.stderr.strip())
            await remove_tree(mirror)
        mirror.parent.mkdir(parents=True, exist_ok=True)
        await self._git.run(["init", "--quiet", "--bare", os.fspath(mirror)], cwd=self.root)
        (mirror / "config").write_text(canonical_config(clone_url), encoding="utf-8")
        _write_exclude(mirror)
        return mirror

    async def _sync_mirror(self, project_path: str, clone_url: str) -> Path:
        mirror = await self._configure(project_path, clone_url)
        await self._git.run(
            ["fetch", "--quiet", "--prune", "--no-tags", "origin"],
            cwd=self.root,
            git_dir=mirror,
            auth_url=clone_url,
            attempts=NETWORK_READ_ATTEMPTS,
        )
        return mirror

    async def _remote_ref(self, mirror: Path, branch: str) -> str | None:
        found = await self._git.run(
            ["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}"],
            cwd=self.root,
            git_dir=mirror,
            ok_codes=(0, 1),
        )
        return found.stdout.strip() if found.exit_code == 0 else None

    async def _resume_branch(self, mirror: Path, iid: int, wanted: str) -> str:
        """``wanted``, unless the remote holds exactly one other branch of this issue (its title
        was edited since): then that one, so the work and its MR carry on."""
        if await self._remote_ref(mirror, wanted) is not None:
            return wanted
        listing = await self._git.out(
            ["for-each-ref", "--format=%(refname)", f"refs/remotes/origin/crewline/{iid}-*"],
            cwd=self.root,
            git_dir=mirror,
        )
        others = [line.removeprefix("refs/remotes/origin/") for line in listing.splitlines()]
        return others[0] if len(others) == 1 else wanted

    async def _recreate(self, mirror: Path, checkout: Path, branch: str, start: str) -> None:
        await self._pruner.remove_checkout(mirror, checkout)
        checkout.parent.mkdir(parents=True, exist_ok=True)
        await self._git.run(
            ["worktree", "add", "--quiet", "--no-track", "-B", branch, os.fspath(checkout), start],
            cwd=self.root,
            git_dir=mirror,
        )

    async def _discard(self, project_path: str, iid: int, lease: Lease) -> None:
        """Delete checkout, local branch and record, then release the lease (always)."""
        try:
            async with mirror_lock(self._layout.mirror_lock(project_path), self._lock_timeout):
                await self._pruner.remove_worktree(project_path, iid)
        finally:
            await self._leases.release(lease)
