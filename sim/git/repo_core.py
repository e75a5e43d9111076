"""A simulated project's bare git repository: its path and URL, its write lock, git run inside
it, and reading and moving its refs. The base of :class:`sim.git.repos.GitRepos`."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.git.errors import GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA, install_hooks
from sim.git.run import run_git

_LOCKS: dict[Path, asyncio.Lock] = {}  # repository (or namespace directory) -> write lock
# Commit ids each repository is known to hold. Objects are never removed from a simulated
# repository (no gc, no deleted projects), so an id seen once stays valid.
_COMMITS: dict[Path, set[str]] = {}
ID = re.compile(r"[0-9a-f]{40}")
# Ref names read from the files without git: plain names only (no ``..``, no revision syntax).
_PLAIN_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
_UNREADABLE = "unreadable"


def _plain(ref: str) -> bool:
    return (
        bool(_PLAIN_REF.fullmatch(ref))
        and ".." not in ref
        and "//" not in ref
        and not (ref.endswith((".lock", "/", ".")))
    )


def stored_ref(repo: Path, refname: str) -> str | None:
    """The id a branch or tag file holds, as git stores it: a loose ref file, else a line of
    ``packed-refs``; None when there is no such ref; ``_UNREADABLE`` when the file holds
    something else (a symbolic ref), which only git should interpret."""
    loose = repo / refname
    try:
        held = loose.read_text().strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        held = None
    if held is not None:
        return held if ID.fullmatch(held) else _UNREADABLE
    try:
        packed = (repo / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == refname and ID.fullmatch(sha):
            return sha
    return None


class RepoCore:
    """Where a project's bare repository is, its write lock, running git in it, and its
    refs."""

    def __init__(self, root: Path, base_url: Callable[[], str] = lambda: "") -> None:
        self.root = root
        self._base_url = base_url

    def path(self, project: sqlite3.Row) -> Path:
        return self.root / str(project["namespace"]) / f"{project['path']}.git"

    def web_url(self, project: sqlite3.Row) -> str:
        return f"{self._base_url()}/{project['namespace']}/{project['path']}"

    def lock(self, project: sqlite3.Row) -> asyncio.Lock:
        """The write lock of the project's repository, shared by every :class:`GitRepos`
        on the same directory (the routes' instance and the seeder's)."""
        return _LOCKS.setdefault(self.path(project), asyncio.Lock())

    async def ensure(self, project: sqlite3.Row) -> Path:
        repo = self.path(project)
        if not (repo / "HEAD").exists():
            # Its own lock: writers call ensure() while holding the repository's write lock.
            async with _LOCKS.setdefault(repo.parent, asyncio.Lock()):
                if not (repo / "HEAD").exists():
                    repo.parent.mkdir(parents=True, exist_ok=True)
                    branch = project["default_branch"] or "main"
                    await run_git(
                        "init", "--quiet", "--bare", f"--initial-branch={branch}", str(repo)
                    )
                    # Lets smart-HTTP clients fetch any commit by id (CI checkouts, MR heads).
                    await run_git("config", "uploadpack.allowAnySHA1InWant", "true", git_dir=repo)
                    install_hooks(repo)
        return repo

    async def _git(self, project: sqlite3.Row, *args: str, **kwargs: Any) -> tuple[int, bytes]:
        repo = await self.ensure(project)
        return await run_git(*args, git_dir=repo, **kwargs)

    async def branches(self, project: sqlite3.Row) -> dict[str, str]:
        _, out = await self._git(
            project, "for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/heads/"
        )
        pairs = (line.split(" ", 1) for line in out.decode().splitlines() if line)
        return {name: sha for sha, name in pairs}

    async def resolve(self, project: sqlite3.Row, ref: str) -> str | None:
        """A branch, tag, commit id or revision expression -> the full commit id, else None.

        The simulator resolves refs on nearly every read (an MR's heads, a commit's page), so
        plain branch names and known commit ids are answered from the repository's files
        and a set of ids already verified, and git runs only for the rest."""
        if not ref or ref.startswith("-"):
            return None
        repo = await self.ensure(project)
        known = _COMMITS.setdefault(repo, set())
        # Branches win over tags, tags over anything else git understands (ids, ``main~1``).
        candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}", ref]
        if _plain(ref):
            held = stored_ref(repo, candidates[0])
            if held is not None and held != _UNREADABLE:
                return held  # a branch holds a commit id: nothing to peel
            tagged = stored_ref(repo, candidates[1])
            if held is None and tagged is None and ref in known:
                return ref
            candidates = [
                c for c, h in zip(candidates, (held, tagged, ""), strict=True) if h is not None
            ]
        for candidate in candidates:
            code, out = await self._git(
                project,
                "rev-parse",
                "--verify",
                "--quiet",
                f"{candidate}^{{commit}}",
                ok_codes=(0, 1, 128),
            )
            if code == 0:
                sha = out.decode().strip()
                known.add(sha)
                return sha
        return None

    async def _require(self, project: sqlite3.Row, ref: str) -> str:
        sha = await self.resolve(project, ref)
        if sha is None:
            raise GitError(f"unknown ref {ref!r}")
        return sha

    async def _update_ref(
        self, project: sqlite3.Row, branch: str, new: str, old: str | None
    ) -> None:
        try:
            await self._git(project, "update-ref", f"refs/heads/{branch}", new, old or ZERO_SHA)
        except GitError as error:
            raise GitStaleRef(f"branch {branch!r} changed concurrently: {error}") from error
