"""Which webhook events wake the engine, and for what: an event acts on its issue alone.

- an emoji or an MR (un)approval: the gates are looked at (a 👍 or an Approve decides one);
- the echo of this process's own write (the same ``updated_at`` its update got back, a note
  id it posted or edited): nothing, the process already knows (forge/own_writes.py);
- an issue event: that issue is looked at, with the labels the event carries (no call at
  all unless they say it is ready for a role);
- a note on an issue: that issue is looked at as the last listing knows it;
- anything else (pipelines, pushes, other MR events): nothing; the running roles and the
  janitor read what they need, and the poll is the safety net (docs/decisions/0028).
"""

from __future__ import annotations

from enum import StrEnum

from forge.webhooks.events import IssueEvent, NoteEvent, WebhookEvent, wakes_gates
from roles.engine.loop import Engine


class Woke(StrEnum):
    GATES = "gates"
    OWN = "own"  # the echo of our own write
    ISSUE = "issue"
    IGNORED = "ignored"


def route_event(engine: Engine, event: WebhookEvent) -> Woke:
    if wakes_gates(event):
        engine.wake_gates()
        return Woke.GATES
    own = engine.services.gateway.own_writes
    if isinstance(event, IssueEvent):
        if own.issue_event(event.project_path, event.iid, event.updated_at):
            return Woke.OWN
        engine.notice(event.project_path, event.iid, tuple(event.labels))
        return Woke.ISSUE
    if isinstance(event, NoteEvent) and event.issue_iid is not None:
        if own.note_event(event.note_id):
            return Woke.OWN
        engine.notice(event.project_path, event.issue_iid)
        return Woke.ISSUE
    return Woke.IGNORED
