"""Reading a simulated project's repository: commits and logs as GitLab shows them, files and
trees, diffs, merge bases and ancestry."""

from __future__ import annotations

import copy
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from sim.core.http import iso
from sim.git.diff import parse_diff, parse_ls_tree
from sim.git.errors import GitError
from sim.git.repo_core import ID, RepoCore

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


_SEP, _END = "\x1f", "\x1e"
# A commit's page never changes: read once per repository and id (the MR, job and pipeline
# pages show the same few commits over and over).
_COMMIT_PAGES: dict[tuple[Path, str, str], dict[str, Any]] = {}


_LOG_FORMAT = _SEP.join(["%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B"]) + _END


def _gitlab_time(git_iso: str) -> str:
    return iso(datetime.fromisoformat(git_iso))


class RepoReads(RepoCore):
    """Reading a repository: commits, logs, files, trees, diffs and ancestry."""

    async def commit_info(self, project: sqlite3.Row, sha: str) -> dict[str, Any]:
        key = (self.path(project), self.web_url(project), sha)
        page = _COMMIT_PAGES.get(key)
        if page is None:
            commits = await self.log(project, sha, limit=1, no_walk=True)
            if not commits:
                raise GitError(f"unknown commit {sha!r}")
            page = commits[0]
            if ID.fullmatch(sha) and page["id"] == sha:
                _COMMIT_PAGES[key] = page
        return copy.deepcopy(page)

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
