"""Isolated git workspaces: a mirror per project, a worktree per issue, leased, always cleaned.

The contract (SPEC §4-§5):
- a bare mirror per project under the root, fetched before every run;
- a worktree per issue on ``crewline/<iid>-<slug>``, started from the remote branch when an
  earlier attempt pushed work-in-progress there, else from the freshly fetched target branch;
- the worktree is recreated on every :meth:`Workspaces.open` (a leftover from a crash may be
  dirty or corrupt) and is clean when ``open`` returns;
- :meth:`Workspaces.close` removes it whatever happened, and is safe to call twice;
- a lease ``workspace:<project>:<iid>`` per worktree, so no two runs share one;
- a disk budget: :meth:`Workspaces.prune` deletes the oldest unleased leftovers first.

The mirror's git config is rewritten by crewline before each network command: an agent working
in a worktree can change the shared config (a hook path, a remote URL...), and nothing it wrote
may run next to the token. The token itself only ever travels in a command's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from roles.workspace import changes
from roles.workspace.branch_work import BranchWork
from roles.workspace.changes import DiffStat, Identity, RebaseResult
from roles.workspace.errors import (
    WorkspaceBusy,
    WorkspaceError,
)
from roles.workspace.gitcmd import http_origin
from roles.workspace.layout import (
    WorktreeRecord,
    branch_name,
    lease_key,
    mirror_lock,
)
from roles.workspace.worktree import PlanningCheckout, Worktree
from storage.clock import iso_utc
from storage.leases import Lease

log = logging.getLogger(__name__)


__all__ = [
    "DiffStat",
    "Identity",
    "PlanningCheckout",
    "RebaseResult",
    "Workspaces",
    "Worktree",
    "branch_name",
]


class Workspaces(BranchWork):
    """Opening and closing workspaces under their leases, renewing them, and pruning the
    root; the work on a branch is :class:`BranchWork`, mirrors and checkouts
    :class:`WorkspaceBase` (``roles/workspace/branch_work.py``, ``mirrors.py``)."""

    async def open(
        self,
        project_path: str,
        clone_url: str,
        iid: int,
        title: str,
        target_branch: str,
        run_key: str,
    ) -> Worktree:
        """Lease, fetch and check out issue ``iid``'s workspace; raises :class:`WorkspaceBusy`
        when another run holds it."""
        wanted = branch_name(iid, title)
        http_origin(clone_url)  # refuses a URL with credentials before anything happens
        if "/" not in project_path.strip("/") or not target_branch.strip() or not run_key.strip():
            raise ValueError(
                f"need a project path like group/app ({project_path!r}), a target branch "
                f"({target_branch!r}) and a run key ({run_key!r})"
            )
        key = lease_key(project_path, iid)
        lease = await self._take_lease(key, project_path, iid)
        if lease is None:
            holder = await self._leases.get(key)
            who = f"{holder.holder} until {iso_utc(holder.expires_at)}" if holder else "another run"
            raise WorkspaceBusy(
                f"workspace of {project_path}#{iid} is leased by {who}; "
                "wait for that run to finish (or its lease to expire)"
            )
        checkout = self._layout.checkout(project_path, iid)
        record_path = self._layout.record(project_path, iid)
        try:
            WorktreeRecord(project_path, iid, wanted, run_key, self._clock()).write(record_path)
            self._urls[project_path] = clone_url
            async with mirror_lock(self._layout.mirror_lock(project_path), self._lock_timeout):
                mirror = await self._sync_mirror(project_path, clone_url)
                base_sha = await self._remote_ref(mirror, target_branch)
                if base_sha is None:
                    raise WorkspaceError(
                        f"target branch {target_branch!r} does not exist on {project_path}; "
                        "check the project's target_branch setting"
                    )
                branch = await self._resume_branch(mirror, iid, wanted)
                if branch != wanted:
                    record = WorktreeRecord(project_path, iid, branch, run_key, self._clock())
                    record.write(record_path)
                remote_sha = await self._remote_ref(mirror, branch)
                start_sha = remote_sha or base_sha
                await self._recreate(mirror, checkout, branch, start_sha)
            dirty = await changes.dirty_paths(self._git, checkout)
            if dirty:
                raise WorkspaceError(
                    f"fresh checkout of {branch} is not clean ({', '.join(dirty[:5])}); the "
                    "repository's .gitattributes probably rewrites files on checkout"
                )
        except BaseException:
            await self._discard(project_path, iid, lease)
            raise
        self._held[checkout] = lease
        log.info(
            "workspace %s#%s open on %s from %s (%s)",
            project_path,
            iid,
            branch,
            start_sha[:12],
            "resumed" if remote_sha else "new",
        )
        wt = Worktree(
            project=project_path,
            iid=iid,
            path=checkout,
            branch=branch,
            target_branch=target_branch,
            base_sha=base_sha,
            start_sha=start_sha,
            remote_sha=remote_sha,
            run_key=run_key,
        )
        self._renewers[checkout] = asyncio.create_task(self._keep_leased(wt))
        return wt

    async def open_planning(
        self, project_path: str, clone_url: str, iid: int, target_branch: str
    ) -> PlanningCheckout:
        """Check out the freshly fetched ``target_branch`` (detached, files read-only) at issue
        ``iid``'s planning path, replacing what an earlier attempt left there. The PM claim
        makes sure one PM run of the issue uses it at a time."""
        http_origin(clone_url)
        checkout = self._layout.planning(project_path, iid)
        self._urls[project_path] = clone_url
        async with mirror_lock(self._layout.mirror_lock(project_path), self._lock_timeout):
            mirror = await self._sync_mirror(project_path, clone_url)
            sha = await self._remote_ref(mirror, target_branch)
            if sha is None:
                raise WorkspaceError(
                    f"target branch {target_branch!r} does not exist on {project_path}; "
                    "check the project's target_branch setting"
                )
            await self._pruner.remove_checkout(mirror, checkout)
            checkout.parent.mkdir(parents=True, exist_ok=True)
            await self._git.run(
                ["worktree", "add", "--quiet", "--detach", os.fspath(checkout), sha],
                cwd=self.root,
                git_dir=mirror,
            )
        listing = await self._git.out(["ls-files", "-z"], cwd=checkout)
        files = tuple(sorted(path for path in listing.split("\0") if path))
        await asyncio.to_thread(_read_only, checkout, files)
        log.info("planning checkout of %s#%s at %s (%s)", project_path, iid, sha[:12], checkout)
        return PlanningCheckout(path=checkout, sha=sha, files=files)

    async def close_planning(self, project_path: str, iid: int) -> None:
        """Remove issue ``iid``'s planning checkout (safe when there is none)."""
        async with mirror_lock(self._layout.mirror_lock(project_path), self._lock_timeout):
            await self._pruner.remove_checkout(
                self._layout.mirror(project_path), self._layout.planning(project_path, iid)
            )

    async def _take_lease(self, key: str, project_path: str, iid: int) -> Lease | None:
        ttl = self.settings.lease_ttl_seconds
        lease = await self._leases.acquire(key, self._worker, ttl)
        if lease is not None:
            return lease
        held = await self._leases.get(key)
        checkout = self._layout.checkout(project_path, iid)
        if held is not None and held.holder == self._worker and checkout not in self._held:
            # Our worker id, but not this process: an earlier process of this worker died
            # holding it (claims make sure one run per issue resumes it).
            await self._leases.release(held)
            return await self._leases.acquire(key, self._worker, ttl)
        return None

    async def close(self, wt: Worktree) -> None:
        """Remove the checkout and its local branch, release the lease. Safe to call twice; a
        workspace whose lease another worker took over is left to that worker."""
        await self._stop_renewing(wt.path)
        lease = self._held.pop(wt.path, None)
        if lease is None:
            return
        current = await self._leases.get(lease.key)
        if current is not None and current.token != lease.token:
            log.warning("workspace %s#%s was taken over by %s", wt.project, wt.iid, current.holder)
            return
        await self._discard(wt.project, wt.iid, lease)
        try:
            await self.prune()
        except (WorkspaceError, OSError) as error:
            log.warning("pruning workspaces after %s#%s failed: %s", wt.project, wt.iid, error)

    async def renew(self, wt: Worktree) -> bool:
        """Extend the workspace's lease; ``False`` when it was lost (stop working in it)."""
        lease = self._held.get(wt.path)
        if lease is None:
            return False
        renewed = await self._leases.renew(lease, self.settings.lease_ttl_seconds)
        if renewed is None:
            return False
        self._held[wt.path] = renewed
        return True

    async def _keep_leased(self, wt: Worktree) -> None:
        """Renew the lease while the worktree is open: a run can outlive one TTL (a long agent
        turn, a slow pipeline), and the pruner deletes checkouts whose lease has lapsed.
        A lost lease means another run owns the checkout now: forget it, so every later
        operation on it refuses instead of writing into someone else's work."""
        interval = max(0.05, self.settings.lease_ttl_seconds / 3)
        while wt.path in self._held:
            await asyncio.sleep(interval)
            try:
                renewed = await self.renew(wt)
            except Exception:
                log.exception("renewing the workspace lease of %s#%s failed", wt.project, wt.iid)
                continue
            if not renewed:
                self._held.pop(wt.path, None)
                log.warning(
                    "workspace lease of %s#%s was lost; the run must stop using it",
                    wt.project,
                    wt.iid,
                )
                return

    async def _stop_renewing(self, path: Path) -> None:
        task = self._renewers.pop(path, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def prune(self) -> list[Path]:
        """Keep the root under ``max_disk_mb``: delete the least recently used unleased
        checkouts, then mirrors no checkout needs. Returns what was deleted."""
        return await self._pruner.prune()


def _read_only(checkout: Path, files: tuple[str, ...]) -> None:
    """Take the write bits off every tracked file: the PM reads the code, it never edits it
    (directories stay writable, for the caches some agent CLIs keep)."""
    for name in files:
        path = checkout / name
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
