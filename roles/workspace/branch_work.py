"""The work on an open worktree's branch: committing, reading what changed, pushing with
``--force-with-lease`` (looked up again after a lost answer, decision 0015), rebasing onto the
target branch."""

from __future__ import annotations

import logging

from roles.workspace import changes
from roles.workspace.changes import DEFAULT_IDENTITY, DiffStat, Identity, RebaseResult
from roles.workspace.errors import (
    GitCommandError,
    PushRejected,
    WorkspaceError,
    push_failure,
)
from roles.workspace.layout import (
    mirror_lock,
)
from roles.workspace.mirrors import NETWORK_READ_ATTEMPTS, PUSH_ATTEMPTS, WorkspaceBase
from roles.workspace.worktree import Worktree

log = logging.getLogger(__name__)


class BranchWork(WorkspaceBase):
    """The work on an open worktree's branch: commits, what changed, pushing under a lease,
    rebasing."""

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
