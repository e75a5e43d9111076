"""What crewline does inside a checkout: commit everything, describe the change, rebase.

Nothing here touches the network or the token; :class:`roles.workspace.workspaces.Workspaces` fetches and
pushes, and calls these with the checkout it leased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from forge.sink import unmark
from roles.workspace.errors import WorkspaceError
from roles.workspace.gitcmd import Git

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who crewline's commits are by (the committer of rebased commits too)."""

    name: str
    email: str

    def __post_init__(self) -> None:
        if not self.name.strip() or "@" not in self.email or "\n" in self.name + self.email:
            raise ValueError(
                f"a commit identity needs a name and an e-mail address, got "
                f"{self.name!r} <{self.email!r}>"
            )

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


DEFAULT_IDENTITY = Identity("crewline", "crewline@localhost")


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    insertions: int | None  # None for a binary file
    deletions: int | None


@dataclass(frozen=True, slots=True)
class DiffStat:
    files: tuple[FileStat, ...]

    @property
    def insertions(self) -> int:
        return sum(f.insertions or 0 for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions or 0 for f in self.files)

    def summary(self) -> str:
        """``"3 files changed, 10 insertions(+), 2 deletions(-)"``, like ``git diff --shortstat``."""
        count = len(self.files)
        return (
            f"{count} file{'s' if count != 1 else ''} changed, "
            f"{self.insertions} insertion{'s' if self.insertions != 1 else ''}(+), "
            f"{self.deletions} deletion{'s' if self.deletions != 1 else ''}(-)"
        )


@dataclass(frozen=True, slots=True)
class RebaseResult:
    """``ok``: the branch now sits on the new base (``head``). Otherwise the rebase stopped on
    ``conflicts`` (paths) and is left in progress for an agent to resolve."""

    ok: bool
    conflicts: list[str] = field(default_factory=list)
    head: str | None = None


def require_sha(name: str, value: str) -> None:
    if not isinstance(value, str) or not _SHA.match(value):
        raise ValueError(f"{name} must be a full 40-character lower-case commit sha, got {value!r}")


async def head_sha(git: Git, checkout: Path) -> str:
    return await git.out(["rev-parse", "--verify", "HEAD^{commit}"], cwd=checkout)


async def dirty_paths(git: Git, checkout: Path) -> list[str]:
    """Paths with changes not committed (untracked included, ignored files excluded)."""
    args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"]
    status = (await git.run(args, cwd=checkout)).stdout  # not stripped: a status starts with " "
    return [entry[3:] for entry in status.split("\0") if len(entry) > 3]


async def commit_all(git: Git, checkout: Path, message: str, identity: Identity) -> str | None:
    """Stage every change (as ``git add -A``) and commit it; ``None`` when nothing changed."""
    if not message.strip():
        raise ValueError("a commit message is required")
    # Through the sink like every text crewline writes: no hidden marker in a message.
    message = unmark(message)
    await git.run(["add", "--all"], cwd=checkout)
    staged = await git.run(["diff", "--cached", "--quiet"], cwd=checkout, ok_codes=(0, 1))
    if staged.exit_code == 0:
        return None
    await git.run(
        ["commit", "--quiet", "--no-verify", "--file=-"],
        cwd=checkout,
        env=identity.env(),
        stdin=message.encode("utf-8"),
    )
    return await head_sha(git, checkout)


async def changed_files(git: Git, checkout: Path, since: str) -> list[str]:
    """Paths the committed work changed since it forked from ``since`` (a rename counts as
    both paths), sorted. Uses the merge base, so upstream changes brought in by a rebase are
    not the branch's own."""
    output = (
        await git.run(
            ["diff", "--name-only", "-z", "--no-renames", f"{since}...HEAD"], cwd=checkout
        )
    ).stdout
    return sorted(path for path in output.split("\0") if path)


async def diff_stat(git: Git, checkout: Path, since: str) -> DiffStat:
    """Lines added and removed per file since the merge base with ``since``."""
    output = (
        await git.run(["diff", "--numstat", "-z", "--no-renames", f"{since}...HEAD"], cwd=checkout)
    ).stdout
    files = []
    for record in output.split("\0"):
        if not record:
            continue
        added, deleted, path = record.split("\t", 2)
        files.append(
            FileStat(
                path=path,
                insertions=None if added == "-" else int(added),
                deletions=None if deleted == "-" else int(deleted),
            )
        )
    return DiffStat(tuple(files))


async def diff_text(git: Git, checkout: Path, since: str, limit: int) -> str:
    """The branch's own change since the merge base with ``since`` plus uncommitted edits of
    tracked files, as a unified diff cut to ``limit`` characters (the cut is said)."""
    base = await git.out(["merge-base", since, "HEAD"], cwd=checkout)
    text = (await git.run(["diff", "--no-color", "--no-ext-diff", base], cwd=checkout)).stdout
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... diff cut: {len(text) - limit} more characters ...]\n"


async def commits(git: Git, checkout: Path, since: str) -> list[tuple[str, str]]:
    """``(sha, subject)`` of the commits on HEAD that ``since`` does not have, oldest first."""
    output = (
        await git.run(["log", "--reverse", "--format=%H%x1f%s", f"{since}..HEAD"], cwd=checkout)
    ).stdout
    return [
        (sha, subject)
        for sha, _, subject in (line.partition("\x1f") for line in output.splitlines())
    ]


async def commit_messages(git: Git, checkout: Path, since: str) -> list[tuple[str, str]]:
    """``(sha, full message)`` of the commits on HEAD that ``since`` does not have."""
    output = (
        await git.run(["log", "--format=%H%x1f%B%x1e", f"{since}..HEAD"], cwd=checkout)
    ).stdout
    records = (record.strip("\n").partition("\x1f") for record in output.split("\x1e"))
    return [(sha, message) for sha, _, message in records if sha]


async def rebase_in_progress(git: Git, checkout: Path) -> bool:
    for state in ("rebase-merge", "rebase-apply"):
        where = await git.out(["rev-parse", "--git-path", state], cwd=checkout)
        if (checkout / where).exists():
            return True
    return False


async def _unmerged(git: Git, checkout: Path) -> list[str]:
    output = (await git.run(["diff", "--name-only", "-z", "--diff-filter=U"], cwd=checkout)).stdout
    return sorted({path for path in output.split("\0") if path})


async def _after_step(git: Git, checkout: Path, code: int, stderr: str, step: str) -> RebaseResult:
    """Turn the exit of a rebase step into a result: done, stopped on conflicts, or an error."""
    if code == 0 and not await rebase_in_progress(git, checkout):
        return RebaseResult(ok=True, head=await head_sha(git, checkout))
    conflicts = await _unmerged(git, checkout)
    if conflicts:
        return RebaseResult(ok=False, conflicts=conflicts)
    raise WorkspaceError(f"git rebase {step} stopped without a conflict to resolve: {stderr}")


async def rebase_onto(git: Git, checkout: Path, upstream: str, identity: Identity) -> RebaseResult:
    """Replay the branch's own commits onto ``upstream``; stop on conflicts, leaving the rebase
    in progress."""
    if await rebase_in_progress(git, checkout):
        raise WorkspaceError(
            "a rebase is already in progress in this workspace; continue or abort it first"
        )
    dirty = await dirty_paths(git, checkout)
    if dirty:
        raise WorkspaceError(
            f"cannot rebase with uncommitted changes ({', '.join(dirty[:5])}); commit them first"
        )
    result = await git.run(
        ["rebase", "--quiet", upstream], cwd=checkout, env=identity.env(), ok_codes=(0, 1)
    )
    return await _after_step(git, checkout, result.exit_code, result.stderr, "onto " + upstream)


async def continue_rebase(git: Git, checkout: Path, identity: Identity) -> RebaseResult:
    """Take the resolved files as they are and go on; refuses files that still hold conflict
    markers (they are reported as conflicts again)."""
    if not await rebase_in_progress(git, checkout):
        raise WorkspaceError("no rebase is in progress in this workspace")
    await git.run(["add", "--all"], cwd=checkout)
    check = await git.run(["diff", "--cached", "--check"], cwd=checkout, ok_codes=(0, 1, 2))
    marked = sorted(
        {
            line.split(":", 1)[0]
            for line in check.stdout.splitlines()
            if line.endswith("leftover conflict marker")
        }
    )
    if marked:
        return RebaseResult(ok=False, conflicts=marked)
    staged = await git.run(["diff", "--cached", "--quiet"], cwd=checkout, ok_codes=(0, 1))
    # A commit whose resolution equals the new base has nothing left to apply: skip it.
    step = "--continue" if staged.exit_code == 1 else "--skip"
    env = {**identity.env(), "GIT_EDITOR": "true"}
    result = await git.run(["rebase", step], cwd=checkout, env=env, ok_codes=(0, 1))
    return await _after_step(git, checkout, result.exit_code, result.stderr, step)


async def abort_rebase(git: Git, checkout: Path) -> bool:
    """Put the branch back as it was before the rebase; ``False`` when none was in progress."""
    if not await rebase_in_progress(git, checkout):
        return False
    await git.run(["rebase", "--abort"], cwd=checkout)
    return True
