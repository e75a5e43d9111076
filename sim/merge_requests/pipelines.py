"""A merge request's own pipelines (``source: merge_request_event``), created by the engine.

Detached: on the MR's head, at ``refs/merge-requests/<iid>/head``, when an opened MR's head has
no pipeline yet. Merged results, for a project with ``merge_pipelines_enabled`` (GitLab
Premium): on a merge commit of the head into the target's current head, written to
``refs/merge-requests/<iid>/merge`` and remembering the head it tests (``source_sha``); its sha
is not the MR's head. If the two conflict, GitLab falls back to a detached pipeline, and so
does the simulator.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from sim.git.hooks import ZERO_SHA
from sim.git.repos import GitRepos

if TYPE_CHECKING:
    from sim.pipelines.engine import PipelineEngine


async def detached(
    engine: PipelineEngine, project: sqlite3.Row, user_id: int | None, iid: int, sha: str
) -> int | None:
    return await engine.create(
        project, user_id, ref=f"refs/merge-requests/{iid}/head", sha=sha,
        source="merge_request_event", merge_request_iid=iid,
    )  # fmt: skip


async def merged_results(
    engine: PipelineEngine,
    repos: GitRepos,
    project: sqlite3.Row,
    user_id: int | None,
    *,
    iid: int,
    target: str,
    head: str,
) -> int | None:
    """MR ``iid``'s merged-results pipeline for ``head`` into the branch ``target``."""
    target_sha = await repos.resolve(project, target) if target else None
    merged = None
    if target_sha is not None:
        merged = await repos.merge_ref(
            project, source=head, target=target_sha, ref=f"refs/merge-requests/{iid}/merge",
            message=f"Merge {head[:8]} into {target_sha[:8]}\n\nMerged results for !{iid}",
        )  # fmt: skip
    if merged is None:
        return await detached(engine, project, user_id, iid, head)
    return await engine.create(
        project, user_id, ref=f"refs/merge-requests/{iid}/merge", sha=merged,
        before_sha=target_sha or ZERO_SHA, source="merge_request_event",
        merge_request_iid=iid, source_sha=head,
    )  # fmt: skip
