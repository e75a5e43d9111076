"""Real bare git repositories behind the simulated projects.

Every operation runs ``git`` as a subprocess (never blocking the event loop). Writes never
touch a working tree: they build trees in a temporary index and move the branch with
``update-ref <ref> <new> <old>``, so a concurrent push cannot be silently overwritten; a
per-repository lock serialises the simulator's own writes. :class:`GitRepos` writes (branches,
commits, merges); it builds on :class:`sim.git.repo_reads.RepoReads` (reading) and
:class:`sim.git.repo_core.RepoCore` (paths, locks, git, refs).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from sim.git.errors import GitActionError, GitConflict, GitError, GitStaleRef
from sim.git.hooks import ZERO_SHA
from sim.git.repo_reads import RepoReads
from sim.git.run import clean_git_env as clean_git_env
from sim.git.run import identity_env
from sim.git.run import run_git as run_git
from sim.git.tree import TreeEdit, apply_actions


class GitRepos(RepoReads):
    # ------------------------------------------------------------ repositories

    # ------------------------------------------------------------ refs

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

    # ------------------------------------------------------------ content

    # ------------------------------------------------------------ ancestry and merging

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
        """A fresh working copy of commit ``sha`` at ``dest`` (which must not exist yet).

        It borrows the bare repository's objects (``objects/info/alternates``, what
        ``git clone --shared`` sets up) instead of fetching them: every CI job and rebase
        makes one, and a fetch costs three more git processes and a loose object per file."""
        full = await self._require(project, sha)
        repo = await self.ensure(project)
        await run_git("init", "--quiet", "--template=", str(dest))
        info = dest / ".git" / "objects" / "info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "alternates").write_text(f"{(repo / 'objects').resolve()}\n", encoding="utf-8")
        await run_git("checkout", "--quiet", "--detach", full, cwd=dest)
        return dest


GIT_KEY = web.AppKey("git_repos", GitRepos)
