"""Real bare git repositories behind the simulated projects.

Every operation runs ``git`` as a subprocess (never blocking the event loop). Writes never
touch a working tree: they build trees in a temporary index and move the branch with
``update-ref <ref> <new> <old>``, so a concurrent push cannot be silently overwritten; a
per-repository lock serialises the simulator's own writes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sim.core.http import iso
from sim.git.diff import parse_diff, parse_ls_tree
from sim.git.errors import GitActionError, GitConflict, GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA, install_hooks
from sim.git.run import clean_git_env as clean_git_env
from sim.git.run import identity_env
from sim.git.run import run_git as run_git
from sim.git.tree import TreeEdit, apply_actions

_LOCKS: dict[Path, asyncio.Lock] = {}  # repository (or namespace directory) -> write lock
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
_SEP, _END = "\x1f", "\x1e"
_LOG_FORMAT = _SEP.join(["%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B"]) + _END


def _gitlab_time(git_iso: str) -> str:
    return iso(datetime.fromisoformat(git_iso))


class GitRepos:
    def __init__(self, root: Path, base_url: Callable[[], str] = lambda: "") -> None:
        self.root = root
        self._base_url = base_url

    # ------------------------------------------------------------ repositories

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

    # ------------------------------------------------------------ refs

    async def branches(self, project: sqlite3.Row) -> dict[str, str]:
        _, out = await self._git(
            project, "for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/heads/"
        )
        pairs = (line.split(" ", 1) for line in out.decode().splitlines() if line)
        return {name: sha for sha, name in pairs}

    async def resolve(self, project: sqlite3.Row, ref: str) -> str | None:
        """A branch, tag, commit id or revision expression -> the full commit id, else None."""
        if not ref or ref.startswith("-"):
            return None
        # Branches win over tags, tags over anything else git understands (ids, ``main~1``).
        candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}", ref]
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
                return out.decode().strip()
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

    async def create_branch(self, project: sqlite3.Row, name: str, ref: str) -> str:
        code, _ = await self._git(
            project, "check-ref-format", "--branch", name, ok_codes=(0, 1, 128)
        )
        if code != 0 or name.startswith("-"):
            raise GitError(f"invalid branch name {name!r}")
        async with self.lock(project):
            sha = await self._require(project, ref)
            if name in await self.branches(project):
                raise GitStaleRef(f"branch {name!r} already exists")
            await self._update_ref(project, name, sha, None)
        return sha

    async def delete_branch(self, project: sqlite3.Row, name: str) -> None:
        async with self.lock(project):
            sha = (await self.branches(project)).get(name)
            if sha is None:
                raise GitError(f"unknown branch {name!r}")
            await self._git(project, "update-ref", "-d", f"refs/heads/{name}", sha)

    # ------------------------------------------------------------ commits

    async def commit(
        self,
        project: sqlite3.Row,
        *,
        branch: str,
        message: str,
        actions: list[dict[str, Any]],
        author_name: str,
        author_email: str,
        start_branch: str | None = None,
        expected_sha: str | None = None,
    ) -> str:
        """Apply GitLab commit ``actions`` on top of ``branch`` (or ``start_branch`` when
        ``branch`` does not exist yet) and move ``branch`` to the new commit."""
        if not actions:
            raise GitActionError("actions must not be empty")
        async with self.lock(project):
            current = (await self.branches(project)).get(branch)
            if expected_sha is not None and current != expected_sha:
                raise GitStaleRef(f"branch {branch!r} is at {current}, expected {expected_sha}")
            parent = current
            if parent is None and start_branch is not None:
                parent = await self._require(project, start_branch)
            if parent is None and await self.branches(project):
                raise GitActionError(
                    f"branch {branch!r} does not exist: pass start_branch to create it"
                )
            tree = await self._tree_with(project, parent, actions)
            sha = await self._commit_tree(
                project, tree, [parent] if parent else [], message, author_name, author_email
            )
            await self._update_ref(project, branch, sha, current)
            return sha

    async def _tree_with(
        self, project: sqlite3.Row, parent: str | None, actions: list[dict[str, Any]]
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="sim-index-") as scratch:
            env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            if parent:
                await self._git(project, "read-tree", parent, env=env)
            _, listing = await self._git(project, "ls-files", "--stage", "-z", env=env)
            entries = {}
            for record in listing.decode().split("\0"):
                if record:
                    meta, path = record.split("\t", 1)
                    mode, blob, _stage = meta.split()
                    entries[path] = (mode, blob)
            edits = apply_actions(entries, actions)
            lines = []
            for edit in edits:
                lines.append(await self._index_line(project, edit))
            await self._git(
                project,
                "update-index",
                "-z",
                "--index-info",
                stdin="".join(lines).encode(),
                env=env,
            )
            _, tree = await self._git(project, "write-tree", env=env)
            return tree.decode().strip()

    async def _index_line(self, project: sqlite3.Row, edit: TreeEdit) -> str:
        if edit.mode is None:
            return f"0 {ZERO_SHA}\t{edit.path}\0"
        blob = edit.blob
        if edit.content is not None:
            _, out = await self._git(project, "hash-object", "-w", "--stdin", stdin=edit.content)
            blob = out.decode().strip()
        return f"{edit.mode} {blob}\t{edit.path}\0"

    async def _commit_tree(
        self,
        project: sqlite3.Row,
        tree: str,
        parents: list[str],
        message: str,
        author_name: str,
        author_email: str,
    ) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        _, out = await self._git(
            project, *args, stdin=message.encode(), env=identity_env(author_name, author_email)
        )
        return out.decode().strip()

    async def commit_info(self, project: sqlite3.Row, sha: str) -> dict[str, Any]:
        commits = await self.log(project, sha, limit=1, no_walk=True)
        if not commits:
            raise GitError(f"unknown commit {sha!r}")
        return commits[0]

    async def log(
        self,
        project: sqlite3.Row,
        ref: str,
        *,
        limit: int | None = 20,
        path: str | None = None,
        no_walk: bool = False,
        exclude: str | None = None,
        skip: int = 0,
    ) -> list[dict[str, Any]]:
        """Commits reachable from ``ref`` but not from ``exclude`` (newest first), optionally
        only those touching ``path``; ``limit`` None means all."""
        sha = await self.resolve(project, ref)
        if sha is None:
            return []
        args = ["log", f"--format={_LOG_FORMAT}", f"--skip={skip}"]
        if limit is not None:
            args.append(f"--max-count={limit}")
        if no_walk:
            args.append("--no-walk")
        args.append(sha)
        if exclude is not None:
            args.append(f"^{await self._require(project, exclude)}")
        args.append("--")
        if path:
            args.append(path)
        _, out = await self._git(project, *args)
        return [
            self._commit_json(project, record)
            for record in out.decode(errors="replace").split(_END)
            if record.strip()
        ]

    def _commit_json(self, project: sqlite3.Row, record: str) -> dict[str, Any]:
        sha, parents, an, ae, ad, cn, ce, cd, body = record.lstrip("\n").split(_SEP, 8)
        message = body
        title = message.split("\n", 1)[0]
        return {
            "id": sha,
            "short_id": sha[:8],
            "title": title,
            "message": message,
            "author_name": an,
            "author_email": ae,
            "authored_date": _gitlab_time(ad),
            "committer_name": cn,
            "committer_email": ce,
            "committed_date": _gitlab_time(cd),
            "created_at": _gitlab_time(cd),
            "parent_ids": parents.split(),
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{self.web_url(project)}/-/commit/{sha}",
        }

    # ------------------------------------------------------------ content

    async def read_file(self, project: sqlite3.Row, ref: str, path: str) -> bytes | None:
        entry = await self.blob_entry(project, ref, path)
        if entry is None:
            return None
        _, out = await self._git(project, "cat-file", "blob", entry["id"])
        return out

    async def blob_entry(self, project: sqlite3.Row, ref: str, path: str) -> dict[str, Any] | None:
        """The tree entry of the file ``path`` at ``ref``: id, mode, size; None if absent."""
        sha = await self.resolve(project, ref)
        if sha is None or not path.strip("/"):
            return None
        _, out = await self._git(project, "ls-tree", "-z", "-l", "--full-tree", sha, "--", path)
        for entry in parse_ls_tree(out):
            if entry["path"] == path and entry["type"] == "blob":
                return entry
        return None

    async def tree(
        self, project: sqlite3.Row, ref: str, path: str = "", *, recursive: bool = False
    ) -> list[dict[str, Any]] | None:
        """Entries of the directory ``path`` at ``ref`` (None when ``ref`` is unknown)."""
        sha = await self.resolve(project, ref)
        if sha is None:
            return None
        args = ["ls-tree", "-z", "-l", "--full-tree"]
        if recursive:
            args += ["-r", "-t"]
        target = f"{sha}:{path.strip('/')}" if path.strip("/") else sha
        code, out = await self._git(project, *args, target, ok_codes=(0, 128))
        if code != 0:
            return []
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        return [{**e, "path": prefix + e["path"]} for e in parse_ls_tree(out)]

    async def diff(self, project: sqlite3.Row, base: str | None, head: str) -> list[dict[str, Any]]:
        """GitLab diff objects from ``base`` to ``head``; ``base`` None diffs against nothing
        (a root commit's changes)."""
        old = EMPTY_TREE if base is None else await self._require(project, base)
        new = await self._require(project, head)
        common = ("diff", "-M", "--no-color", "--no-ext-diff", "--full-index", old, new)
        _, raw = await self._git(project, *common[:1], "--raw", "-z", "--abbrev=40", *common[1:])
        _, patch = await self._git(project, *common)
        return parse_diff(raw, patch)

    # ------------------------------------------------------------ ancestry and merging

    async def merge_base(self, project: sqlite3.Row, a: str, b: str) -> str | None:
        sha_a, sha_b = await self.resolve(project, a), await self.resolve(project, b)
        if sha_a is None or sha_b is None:
            return None
        code, out = await self._git(project, "merge-base", sha_a, sha_b, ok_codes=(0, 1))
        return out.decode().strip() if code == 0 else None

    async def is_ancestor(self, project: sqlite3.Row, ancestor: str, descendant: str) -> bool:
        old, new = await self.resolve(project, ancestor), await self.resolve(project, descendant)
        if old is None or new is None:
            return False
        code, _ = await self._git(project, "merge-base", "--is-ancestor", old, new, ok_codes=(0, 1))
        return code == 0

    async def _merge_tree(self, project: sqlite3.Row, ours: str, theirs: str) -> str | None:
        """The merged tree of two commits, or None when they conflict."""
        code, out = await self._git(
            project, "merge-tree", "--write-tree", "--no-messages", ours, theirs, ok_codes=(0, 1)
        )
        return out.decode().split("\n", 1)[0].strip() if code == 0 else None

    async def merge_check(self, project: sqlite3.Row, source: str, target: str) -> str:
        ours, theirs = await self._require(project, target), await self._require(project, source)
        tree = await self._merge_tree(project, ours, theirs)
        return "can_be_merged" if tree is not None else "cannot_be_merged"

    async def merge(
        self,
        project: sqlite3.Row,
        *,
        source: str,
        target: str,
        message: str,
        author_name: str,
        author_email: str,
        squash: bool = False,
        expected_target_sha: str | None = None,
    ) -> str:
        """Merge ``source`` into the branch ``target`` with a merge commit (or one squashed
        commit); returns the new head of ``target``."""
        async with self.lock(project):
            current = (await self.branches(project)).get(target)
            if current is None:
                raise GitError(f"unknown target branch {target!r}")
            if expected_target_sha is not None and current != expected_target_sha:
                raise GitStaleRef(
                    f"branch {target!r} is at {current}, expected {expected_target_sha}"
                )
            theirs = await self._require(project, source)
            tree = await self._merge_tree(project, current, theirs)
            if tree is None:
                raise GitConflict(f"merging {source!r} into {target!r} conflicts")
            parents = [current] if squash else [current, theirs]
            sha = await self._commit_tree(
                project, tree, parents, message, author_name, author_email
            )
            await self._update_ref(project, target, sha, current)
            return sha

    async def merge_ref(
        self,
        project: sqlite3.Row,
        *,
        source: str,
        target: str,
        ref: str,
        message: str,
        author_name: str = "GitLab",
        author_email: str = "noreply@gitlab.sim",
    ) -> str | None:
        """A merge commit of commit ``source`` into commit ``target`` (parents: target,
        source) written to ``ref``, not to any branch: what GitLab prepares at
        ``refs/merge-requests/<iid>/merge``. None when the two conflict."""
        async with self.lock(project):
            tree = await self._merge_tree(project, target, source)
            if tree is None:
                return None
            sha = await self._commit_tree(
                project, tree, [target, source], message, author_name, author_email
            )
            await self._git(project, "update-ref", ref, sha)
            return sha

    async def checkout(self, project: sqlite3.Row, sha: str, dest: Path) -> Path:
        """A fresh working copy of commit ``sha`` at ``dest`` (which must not exist yet)."""
        full = await self._require(project, sha)
        repo = await self.ensure(project)
        await run_git("init", "--quiet", str(dest))
        await run_git("fetch", "--quiet", "--no-tags", str(repo), full, cwd=dest)
        await run_git("checkout", "--quiet", "--detach", full, cwd=dest)
        return dest


GIT_KEY = web.AppKey("git_repos", GitRepos)
