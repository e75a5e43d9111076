"""Learnings of every host, indexed from GitLab into this host's SQLite.

The developer and review roles post what an agent learned as a keyed note on the issue
(``roles/compaction.py``). Every host reads those notes back: the issues updated since its
cursor (one listing per project; the cursor is kept in SQLite), then the notes of each one
that no agent is working on right now (its learnings note is followed by a transition, which
moves ``updated_at`` past the cursor again). Only crewline's own notes count; a learning
the issue already has locally (this host wrote it) is not stored twice.
"""

from __future__ import annotations

import logging
import re

from forge.control import CONTROL_LABEL
from roles.compaction import learnings_from_markdown
from roles.ports import IssueTracker
from storage import Storage
from workflow import StateKind, read_state

log = logging.getLogger(__name__)

# The key of a learnings note: "<role>-<attempt>:learnings", with a step prefix for the
# review's rounds (e.g. "review-2:r1-learnings").
_LEARNINGS_KEY = re.compile(r"<!-- crewline:note key=[a-z]+-\d+:(?:\S+-)?learnings -->")


def cursor_key(project: str) -> str:
    return f"learnings-cursor:{project}"


async def index_learnings(gateway: IssueTracker, storage: Storage, project: str) -> int:
    """Index the learnings posted on ``project`` since the last call; how many were new."""
    settings = storage.settings
    cursor = await settings.get(cursor_key(project))
    issues = await gateway.list_issues(project, updated_after=cursor, state="all")
    newest = cursor
    added = 0
    for issue in issues:
        if newest is None or issue.updated_at > newest:
            newest = issue.updated_at
        if (cursor is not None and issue.updated_at <= cursor) or CONTROL_LABEL in issue.labels:
            continue  # seen at that stamp already (GitLab lists "on or after"); no learnings
        state = read_state(gateway.workflow, issue.labels).state
        if state is not None and state.kind is StateKind.RUNNING:
            continue  # read once it moves on: its learnings note comes before the move
        for note in await gateway.notes(project, issue.iid):
            if not note.by_crewline or not _LEARNINGS_KEY.search(note.body):
                continue
            for item in learnings_from_markdown(note.body):
                added += await storage.learnings.add_once(project, issue.iid, item.kind, item.text)
    if newest is not None and newest != cursor:
        await settings.set(cursor_key(project), newest)
    if added:
        log.info("indexed %d learnings from GitLab: project=%s", added, project)
    return added
