"""GitLab Push Hook payloads, emitted as ``push`` events whenever a branch moves: a git
push over smart HTTP, a commit through the API, a merge, a rebase, a branch created or
deleted. Pipelines and merge requests subscribe to them."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from sim.core.base import SIM_KEY
from sim.core.events import SimEvent
from sim.core.hook_payloads import project_hook_json, repository_hook_json
from sim.git.hooks import ZERO_SHA
from sim.git.protected_branches import rules_for
from sim.git.repos import GIT_KEY, GitRepos, run_git

MAX_COMMITS = 20  # GitLab lists at most 20 commits in a push payload


async def emit_push(
    app: web.Application,
    project: sqlite3.Row,
    user: sqlite3.Row,
    ref: str,
    before: str,
    after: str,
) -> dict[str, Any]:
    """Announce that ``ref`` moved from ``before`` to ``after`` (either may be the zero id)
    as a ``push`` event (``tag_push`` for ``refs/tags/...``); returns the payload."""
    payload = await push_payload(app, project, user, ref, before, after)
    app[SIM_KEY].events.emit(SimEvent(payload["object_kind"], int(project["id"]), payload))
    return payload


async def push_payload(
    app: web.Application,
    project: sqlite3.Row,
    user: sqlite3.Row,
    ref: str,
    before: str,
    after: str,
) -> dict[str, Any]:
    sim = app[SIM_KEY]
    repos = app[GIT_KEY]
    shas = await _pushed_commits(repos, project, ref, before, after)
    commits = [await _commit_json(repos, project, sha) for sha in shas[-MAX_COMMITS:]]
    branch = ref.removeprefix("refs/heads/")
    protected = ref.startswith("refs/heads/") and bool(
        await rules_for(sim, int(project["id"]), branch)
    )
    kind = "tag_push" if ref.startswith("refs/tags/") else "push"
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": protected,
        "checkout_sha": None if after == ZERO_SHA else after,
        "message": None,
        "user_id": user["id"],
        "user_name": user["name"],
        "user_username": user["username"],
        "user_email": "[REDACTED]",
        "user_avatar": None,
        "project_id": project["id"],
        "project": project_hook_json(sim, project),
        "repository": {
            **repository_hook_json(sim, project),
            "git_http_url": project_hook_json(sim, project)["git_http_url"],
            "git_ssh_url": project_hook_json(sim, project)["git_ssh_url"],
            "visibility_level": project_hook_json(sim, project)["visibility_level"],
        },
        "commits": commits,
        "total_commits_count": len(shas),
        "push_options": {},
    }


async def _pushed_commits(
    repos: GitRepos, project: sqlite3.Row, ref: str, before: str, after: str
) -> list[str]:
    """The commits the push brought, oldest first: ``before..after``, or for a new branch
    those no other branch already has."""
    if after == ZERO_SHA:
        return []
    repo = await repos.ensure(project)
    if before == ZERO_SHA:
        branch = ref.removeprefix("refs/heads/")
        args = ["rev-list", "--reverse", after, "--not", f"--exclude={branch}", "--branches"]
    else:
        args = ["rev-list", "--reverse", f"{before}..{after}"]
    _, out = await run_git(*args, git_dir=repo, ok_codes=(0, 128))
    return out.decode().split()


async def _commit_json(repos: GitRepos, project: sqlite3.Row, sha: str) -> dict[str, Any]:
    info = await repos.commit_info(project, sha)
    repo = await repos.ensure(project)
    _, out = await run_git(
        "diff-tree",
        "-r",
        "-z",
        "--no-commit-id",
        "--name-status",
        "--root",
        "-m",
        "--first-parent",
        sha,
        git_dir=repo,
    )
    changes: dict[str, list[str]] = {"added": [], "modified": [], "removed": []}
    tokens = out.decode(errors="replace").split("\0")
    for status, path in zip(tokens[0::2], tokens[1::2], strict=False):
        key = {"A": "added", "D": "removed"}.get(status[:1], "modified")
        changes[key].append(path)
    return {
        "id": sha,
        "message": info["message"],
        "title": info["title"],
        "timestamp": info["authored_date"],
        "url": info["web_url"],
        "author": {"name": info["author_name"], "email": info["author_email"]},
        **changes,
    }
