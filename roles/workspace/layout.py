"""Where things live under the workspace root, the names derived from issues, and the lock that
serialises git writes to one project's mirror.

::

    <root>/home/                      HOME of every git command (nothing of the user's leaks in)
    <root>/mirrors/<project>.git      bare repository: remote-tracking refs + the worktrees' branches
    <root>/mirrors/<project>.lock     flock held while git writes to that mirror
    <root>/worktrees/<project>/<iid>/     one issue's checkout
    <root>/worktrees/<project>/<iid>.json what the pruner needs: project, iid, branch, last use

A record is written before its checkout is created and removed after it is deleted, so a
checkout without a record is debris nobody uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

from roles.workspace.errors import WorkspaceError

BRANCH_PREFIX = "crewline/"
_SLUG_MAX = 40
_LOCK_POLL_SECONDS = 0.02


def slugify(title: str, max_length: int = _SLUG_MAX) -> str:
    """``"Fix: crash in Ünïcode paths!"`` -> ``"fix-crash-in-unicode-paths"`` (ASCII, lower case,
    dashes, at most ``max_length`` characters, never empty)."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or "issue"


def branch_name(iid: int, title: str) -> str:
    """The branch of issue ``iid``: ``crewline/<iid>-<slug of the title>``."""
    if isinstance(iid, bool) or not isinstance(iid, int) or iid < 1:
        raise ValueError(f"issue iid must be a positive integer, got {iid!r}")
    return f"{BRANCH_PREFIX}{iid}-{slugify(title)}"


def project_dirname(project_path: str) -> str:
    """A file name unique to the project: readable part + hash (``group/app`` and
    ``group-app`` must not share a mirror)."""
    digest = hashlib.sha256(project_path.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", project_path).strip("-.")[:60]
    return f"{readable}-{digest}"


def lease_key(project_path: str, iid: int) -> str:
    return f"workspace:{project_path}:{iid}"


def canonical_config(clone_url: str) -> str:
    """The whole config of a mirror: crewline writes it, nothing else may add to it."""
    quoted = clone_url.replace("\\", "\\\\").replace('"', '\\"')
    return (
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"
        # Maintenance would race with the worktrees' commits; the pruner bounds the disk.
        "[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"
        f'[remote "origin"]\n\turl = "{quoted}"\n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )


def exclude_file(patterns: tuple[str, ...]) -> str:
    """The mirror's ``info/exclude`` (shared by all its worktrees): the coding agents' own
    state files stay untracked, so ``git add --all`` never commits them. crewline's git
    ignores the host's global excludes, so this is the only place that can say it."""
    lines = ["# written by crewline: coding agents' state files, never committed", *patterns]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def mirrors(self) -> Path:
        return self.root / "mirrors"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    def mirror(self, project_path: str) -> Path:
        return self.mirror_named(project_dirname(project_path))

    def mirror_lock(self, project_path: str) -> Path:
        return self.lock_named(project_dirname(project_path))

    def mirror_named(self, dirname: str) -> Path:
        return self.mirrors / f"{dirname}.git"

    def lock_named(self, dirname: str) -> Path:
        return self.mirrors / f"{dirname}.lock"

    def checkout(self, project_path: str, iid: int) -> Path:
        return self.worktrees / project_dirname(project_path) / str(iid)

    def planning(self, project_path: str, iid: int) -> Path:
        """The PM's read-only checkout of the target branch: one stable path per issue, so
        agent CLIs that find sessions by working directory can resume there."""
        return self.root / "planning" / project_dirname(project_path) / str(iid)

    def record(self, project_path: str, iid: int) -> Path:
        return self.worktrees / project_dirname(project_path) / f"{iid}.json"


@dataclass(frozen=True)
class WorktreeRecord:
    project: str
    iid: int
    branch: str
    run_key: str
    last_used: float

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(scratch, path)

    @classmethod
    def read(cls, path: Path) -> WorktreeRecord | None:
        """The record, or ``None`` when it is missing or unreadable (then it is debris)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                project=str(data["project"]),
                iid=int(data["iid"]),
                branch=str(data["branch"]),
                run_key=str(data["run_key"]),
                last_used=float(data["last_used"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


@contextlib.asynccontextmanager
async def mirror_lock(path: Path, timeout_seconds: float) -> AsyncIterator[None]:
    """Hold an exclusive flock on ``path``, across processes and within this one.

    Polled with LOCK_NB rather than blocking in a thread: a cancelled waiter must not go on to
    take the lock in the background and keep it forever.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(
                        f"the mirror lock {path} stayed busy for {timeout_seconds:g} s; another "
                        "crewline process is fetching or pushing this project, try again later"
                    ) from None
                await asyncio.sleep(_LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the flock


def try_lock(path: Path) -> int | None:
    """A descriptor holding the flock on ``path``, or ``None`` when someone else holds it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
