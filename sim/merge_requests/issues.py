"""Issues a merged MR closes (``Closes #1`` in its title or description), closed through
the issues module so they get the same ``close`` event and ``updated_at`` a manual close
would."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web

from sim.core.base import SIM_KEY
from sim.issues.api import update_issue
from sim.issues.issue_input import IssueInput
from sim.issues.records import load_issue
from sim.merge_requests.status import closing_issue_iids

log = logging.getLogger(__name__)

_CLOSE = IssueInput(
    title=None,
    description=None,
    labels=None,
    add_labels=[],
    remove_labels=[],
    assignee_ids=None,
    state_event="close",
    confidential=None,
    due_date=None,
    discussion_locked=None,
    stamp_override=None,
)


async def close_referenced_issues(
    app: web.Application, project: sqlite3.Row, user: sqlite3.Row, text: str
) -> list[int]:
    """Close every open issue of ``project`` that ``text`` closes; the iids closed."""
    sim = app[SIM_KEY]
    closed = []
    for iid in closing_issue_iids(text):
        record = await load_issue(sim, int(project["id"]), iid)
        if record is None or record.row["state"] != "opened":
            log.info("merge of %s closes #%s: no open issue, skipped", project["path"], iid)
            continue
        await update_issue(sim, project, record, user, _CLOSE)
        closed.append(iid)
    return closed
