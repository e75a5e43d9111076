"""The branch operations merging needs beyond :class:`~sim.git.repos.GitRepos`:
who may merge into a branch, fast-forward, server-side rebase, deleting the source branch,
and announcing each ref move as a ``push`` event, as GitLab does for merges and rebases.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from aiohttp import web

from sim.core.base import DEVELOPER, SIM_KEY, access_level
from sim.git.errors import GitConflict, GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA
from sim.git.protected_branches import level_allows, merge_access_level
from sim.git.push_events import emit_push
from sim.git.repos import GIT_KEY, GitRepos, run_git


async def may_merge(
    app: web.Application, project: sqlite3.Row, user: sqlite3.Row, branch: str
) -> bool:
    """Developers merge into unprotected branches; a protected branch needs its
    ``merge_access_level`` (as the protected-branches module decides it)."""
    sim = app[SIM_KEY]
    level = await access_level(sim, user, int(project["id"]))
    if level < DEVELOPER:
        return False
    required = await merge_access_level(sim, int(project["id"]), branch)
    return required is None or level_allows(level, required, is_admin=bool(user["is_admin"]))


async def announce_push(
    app: web.Application,
    project: sqlite3.Row,
    user: sqlite3.Row,
    branch: str,
    before: str,
    after: str,
) -> None:
    await emit_push(app, project, user, f"refs/heads/{branch}", before, after)


async def fast_forward(
    repos: GitRepos, project: sqlite3.Row, branch: str, expected: str, head: str
) -> str:
    """Move ``branch`` from ``expected`` to ``head`` (a descendant); GitStaleRef if it moved."""
    async with repos.lock(project):
        try:
            await run_git(
                "update-ref",
                f"refs/heads/{branch}",
                head,
                expected,
                git_dir=await repos.ensure(project),
            )
        except GitError as error:
            raise GitStaleRef(f"branch {branch!r} moved during the merge: {error}") from error
    return head


async def delete_source_branch(
    app: web.Application, project: sqlite3.Row, user: sqlite3.Row, branch: str, head: str
) -> None:
    """Delete the merged source branch unless someone pushed to it meanwhile."""
    repos = app[GIT_KEY]
    if (await repos.branches(project)).get(branch) != head:
        return
    await repos.delete_branch(project, branch)
    await announce_push(app, project, user, branch, head, ZERO_SHA)


async def rebase_onto(
    app: web.Application,
    project: sqlite3.Row,
    user: sqlite3.Row,
    branch: str,
    head: str,
    onto: str,
) -> str:
    """Rebase ``branch`` (at ``head``) onto ``onto`` in a scratch checkout and move the branch
    to the result; commit authors are kept, the committer is ``user``. Raises GitConflict."""
    repos = app[GIT_KEY]
    repo = await repos.ensure(project)
    identity = [
        "-c",
        f"user.name={user['name']}",
        "-c",
        f"user.email={user['email']}",
    ]
    with tempfile.TemporaryDirectory(prefix="sim-rebase-") as scratch:
        # The checkout borrows the repository's objects: ``onto`` is already there.
        work = await repos.checkout(project, head, Path(scratch) / "work")
        code, _ = await run_git(*identity, "rebase", "--quiet", onto, cwd=work, ok_codes=(0, 1))
        if code != 0:
            raise GitConflict(f"{branch!r} does not rebase cleanly onto {onto[:8]}")
        _, out = await run_git("rev-parse", "HEAD", cwd=work)
        new_head = out.decode().strip()
        if new_head == head:
            return head
        await run_git("fetch", "--quiet", "--no-tags", str(work), new_head, git_dir=repo)
    async with repos.lock(project):
        try:
            await run_git("update-ref", f"refs/heads/{branch}", new_head, head, git_dir=repo)
        except GitError as error:
            raise GitStaleRef(f"branch {branch!r} moved during the rebase: {error}") from error
    await announce_push(app, project, user, branch, head, new_head)
    return new_head
