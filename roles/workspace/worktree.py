"""What an open workspace is: a worktree of an issue's branch, or the PM's read-only checkout of
the target branch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
