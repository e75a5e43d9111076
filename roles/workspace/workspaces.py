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
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from roles.agents import AGENT_STATE_FILES
from roles.workspace import changes
from roles.workspace.changes import DEFAULT_IDENTITY, DiffStat, Identity, RebaseResult
from roles.workspace.errors import (
    GitCommandError,
    PushRejected,
    WorkspaceBusy,
    WorkspaceError,
    push_failure,
)
from roles.workspace.gitcmd import Git, http_origin
from roles.workspace.layout import (
    Layout,
    WorktreeRecord,
    branch_name,
    canonical_config,
    exclude_file,
    lease_key,
    mirror_lock,
)
from roles.workspace.prune import Pruner, remove_tree
from roles.workspace.settings import WorkspaceSettings
from storage.clock import Clock, iso_utc
from storage.leases import Lease, LeaseStore

log = logging.getLogger(__name__)

# A fetch or ls-remote changes nothing: a failed one is simply tried again. A push is tried
# again only after the remote branch shows it was not performed (docs/decisions/0015).
NETWORK_READ_ATTEMPTS = 4
PUSH_ATTEMPTS = 3

__all__ = [
    "DiffStat",
    "Identity",
    "PlanningCheckout",
    "RebaseResult",
    "Workspaces",
    "Worktree",
    "branch_name",
]


@dataclass(frozen=True)
class PlanningCheckout:
    """The target branch at ``sha``, checked out read-only for the PM at a stable ``path``;
    ``files``: every tracked path, sorted."""

    path: Path
    sha: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Worktree:
    """An open workspace. ``base_sha``: the target branch's tip when it was opened;
    ``start_sha``: the commit the checkout started from (the pushed WIP when resumed);
    ``remote_sha``: the branch's sha on the remote at open time, ``None`` when absent: the
    expected sha of the first :meth:`Workspaces.push`."""

    project: str
    iid: int
    path: Path
    branch: str
    target_branch: str
    base_sha: str
    start_sha: str
    remote_sha: str | None
    run_key: str


class Workspaces:
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

    # -- opening and closing ---------------------------------------------------------------

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

    # -- changes -----------------------------------------------------------------------------

    async def commit_all(
        self, wt: Worktree, message: str, author_name: str, author_email: str
    ) -> str | None:
        """Commit every change in the checkout; the new sha, or ``None`` if nothing changed."""
        self._require_open(wt)
        sha = await changes.commit_all(
            self._git, wt.path, message, Identity(author_name, author_email)
        )
        self._touch(wt)
        return sha

    async def changed_files(self, wt: Worktree, since: str | None = None) -> list[str]:
        """Paths the branch's own commits changed since it forked from ``since`` (default: the
        target branch as last fetched, so upstream changes a rebase brought in do not count)."""
        self._require_open(wt)
        return await changes.changed_files(self._git, wt.path, await self._since(wt, since))

    async def diff_stat(self, wt: Worktree, since: str | None = None) -> DiffStat:
        self._require_open(wt)
        return await changes.diff_stat(self._git, wt.path, await self._since(wt, since))

    async def diff(self, wt: Worktree, limit: int = 20_000, since: str | None = None) -> str:
        """The work so far (committed or not) against where the branch forked, bounded."""
        self._require_open(wt)
        return await changes.diff_text(self._git, wt.path, await self._since(wt, since), limit)

    async def commits(self, wt: Worktree, since: str | None = None) -> list[tuple[str, str]]:
        """The branch's own commits as ``(sha, subject)``, oldest first."""
        self._require_open(wt)
        return await changes.commits(self._git, wt.path, await self._since(wt, since))

    async def commit_messages(
        self, wt: Worktree, since: str | None = None
    ) -> list[tuple[str, str]]:
        """The branch's own commits as ``(sha, full message)``: what a push publishes."""
        self._require_open(wt)
        return await changes.commit_messages(self._git, wt.path, await self._since(wt, since))

    async def head(self, wt: Worktree) -> str:
        self._require_open(wt)
        return await changes.head_sha(self._git, wt.path)

    async def push(self, wt: Worktree, expected_remote_sha: str | None) -> str:
        """Push the branch with ``--force-with-lease``: the remote branch must be at
        ``expected_remote_sha`` (absent when ``None``). Returns the pushed sha; raises
        :class:`PushRejected` (``stale`` when the lease check failed).

        A push that failed without a refusal (a 5xx, a reset, a timeout) may have been
        performed with its answer lost: the remote branch is read before pushing again, and
        a branch already at the pushed sha is success."""
        self._require_open(wt)
        if expected_remote_sha is not None:
            changes.require_sha("expected_remote_sha", expected_remote_sha)
        if await changes.rebase_in_progress(self._git, wt.path):
            raise WorkspaceError("a rebase is in progress; continue or abort it before pushing")
        ref = f"refs/heads/{wt.branch}"
        head = await self._git.out(["rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=wt.path)
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            failure = await self._push_once(wt, ref, expected_remote_sha)
            if failure is None:
                break
            # Even a refusal may be our own push seen twice (git's HTTP client resends a
            # request whose connection died), so the remote decides.
            remote = await self.remote_branch_sha(wt.project, wt.branch)
            if remote == head:
                log.info(
                    "push of %s (%s#%s) failed (%s) but the branch is at %s: it was performed",
                    wt.branch, wt.project, wt.iid, failure, head[:12],
                )  # fmt: skip
                break
            if isinstance(failure, PushRejected) or remote != expected_remote_sha:
                raise failure
            if attempt == PUSH_ATTEMPTS:
                raise failure  # not performed, and someone moved the branch meanwhile (or give up)
            log.info(
                "push of %s failed (%s), not performed; attempt %d", wt.branch, failure, attempt + 1
            )
        self._touch(wt)
        log.info("pushed %s of %s#%s at %s", wt.branch, wt.project, wt.iid, head[:12])
        return head

    async def _push_once(
        self, wt: Worktree, ref: str, expected_remote_sha: str | None
    ) -> WorkspaceError | None:
        """One ``git push``: None when it succeeded, else why not."""
        url = self._urls[wt.project]
        async with mirror_lock(self._layout.mirror_lock(wt.project), self._lock_timeout):
            mirror = await self._configure(wt.project, url)
            try:
                result = await self._git.run(
                    [
                        "push",
                        "--porcelain",
                        f"--force-with-lease={ref}:{expected_remote_sha or ''}",
                        "origin",
                        f"{ref}:{ref}",
                    ],
                    cwd=self.root,
                    git_dir=mirror,
                    auth_url=url,
                    ok_codes=(0, 1),
                )
            except GitCommandError as error:  # exit 128 (the transport failed) or a timeout
                return error
        if result.exit_code != 0:
            return push_failure(wt.branch, self._git.sanitize(result.stdout), result.stderr)
        return None

    async def remote_branch_sha(
        self, project_path: str, branch: str, clone_url: str | None = None
    ) -> str | None:
        """The sha of ``branch`` on the remote now (``git ls-remote``), ``None`` if absent."""
        url = clone_url or self._urls.get(project_path)
        if url is None:
            raise WorkspaceError(
                f"no clone URL known for {project_path}: open a workspace of it first, or pass "
                "clone_url"
            )
        ref = f"refs/heads/{branch}"
        self._layout.home.mkdir(parents=True, exist_ok=True)
        listing = await self._git.run(
            ["ls-remote", "--heads", url, ref],
            cwd=self._layout.home,
            auth_url=url,
            attempts=NETWORK_READ_ATTEMPTS,
        )
        for line in listing.stdout.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    async def rebase(
        self, wt: Worktree, onto_branch: str, committer: Identity = DEFAULT_IDENTITY
    ) -> RebaseResult:
        """Fetch, then rebase the branch onto ``origin/<onto_branch>``. On conflicts the rebase
        stays in progress: resolve the files, then :meth:`continue_rebase` or
        :meth:`abort_rebase`."""
        self._require_open(wt)
        url = self._urls[wt.project]
        async with mirror_lock(self._layout.mirror_lock(wt.project), self._lock_timeout):
            mirror = await self._sync_mirror(wt.project, url)
            if await self._remote_ref(mirror, onto_branch) is None:
                raise WorkspaceError(f"branch {onto_branch!r} does not exist on {wt.project}")
        upstream = f"refs/remotes/origin/{onto_branch}"
        return await changes.rebase_onto(self._git, wt.path, upstream, committer)

    async def continue_rebase(
        self, wt: Worktree, committer: Identity = DEFAULT_IDENTITY
    ) -> RebaseResult:
        self._require_open(wt)
        return await changes.continue_rebase(self._git, wt.path, committer)

    async def abort_rebase(self, wt: Worktree) -> bool:
        self._require_open(wt)
        return await changes.abort_rebase(self._git, wt.path)

    # -- internals ---------------------------------------------------------------------------

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


def _read_only(checkout: Path, files: tuple[str, ...]) -> None:
    """Take the write bits off every tracked file: the PM reads the code, it never edits it
    (directories stay writable, for the caches some agent CLIs keep)."""
    for name in files:
        path = checkout / name
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def _write_exclude(mirror: Path) -> None:
    (mirror / "info").mkdir(exist_ok=True)
    (mirror / "info" / "exclude").write_text(exclude_file(AGENT_STATE_FILES), encoding="utf-8")
