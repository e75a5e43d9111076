"""GitLab quick actions: ``/merge``, ``/approve``, ``/assign``… at the start of a line.

GitLab runs a quick action found on its own line of a description or note with the
rights of the author — crewline's token. Text crewline posts is often written by an
agent that read untrusted issue text, so every line that could be a quick action is
neutralised before it is sent.

How: a backslash goes in front of the slash (``\\/merge``). GitLab's extractor only
recognises a command when the line starts with ``/`` (``^\\/(?<cmd>…)`` in
``Gitlab::QuickActions::Extractor``), so the escaped line is never executed; and
``\\/`` is a CommonMark backslash escape of an ASCII punctuation character, so the
rendered note still reads ``/merge``. Backticks would also stop execution but change
the rendering, and a zero-width character would trip our own invisible-Unicode rule.

Which lines: optional leading whitespace (GitLab does not execute those, but the
escape is invisible and keeps the rule simple), ``/``, then any command word followed
by whitespace or the end of the line. The word is not limited to ``QUICK_ACTIONS``:
GitLab adds commands and aliases every release, and escaping an unknown ``/word``
changes nothing a reader sees. It is limited to what a command name can be — letters
and underscores, at most 40 of them (the longest command today has 20; GitLab matches
names case-insensitively) — so a line of wrapped base64 that happens to start with
``/`` is not rewritten. Lines inside fenced code blocks are escaped too:
GitLab skips only backtick fences at column 0 with a matching closing fence, while
tilde fences, indented fences and unclosed fences are still executed — mirroring that
parser is brittle, and the cost of escaping is a visible backslash in a code sample.
Escaping is idempotent: an escaped line no longer starts with ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Commands and aliases documented by GitLab (issues, merge requests, epics, work items,
# incidents, commits). Informational: the neutraliser escapes any ``/word`` line.
QUICK_ACTIONS: frozenset[str] = frozenset(
    [
        "add_child",
        "add_contacts",
        "add_email",
        "approve",
        "assign",
        "assign_reviewer",
        "award",
        "blocked_by",
        "blocks",
        "board_move",
        "cc",
        "checkin_reminder",
        "child_epic",
        "clear_health_status",
        "clear_weight",
        "clone",
        "close",
        "confidential",
        "convert_to_ticket",
        "copy_metadata",
        "create_merge_request",
        "done",
        "draft",
        "due",
        "duplicate",
        "epic",
        "estimate",
        "estimate_time",
        "health_status",
        "invite_email",
        "iteration",
        "label",
        "link",
        "lock",
        "merge",
        "milestone",
        "move",
        "page",
        "parent_epic",
        "promote",
        "promote_to",
        "promote_to_incident",
        "publish",
        "q",
        "react",
        "ready",
        "reassign",
        "reassign_reviewer",
        "rebase",
        "relabel",
        "relate",
        "remove_child",
        "remove_child_epic",
        "remove_contacts",
        "remove_due_date",
        "remove_email",
        "remove_epic",
        "remove_estimate",
        "remove_iteration",
        "remove_label",
        "remove_milestone",
        "remove_parent",
        "remove_parent_epic",
        "remove_reviewer",
        "remove_time_estimate",
        "remove_time_spent",
        "remove_zoom",
        "reopen",
        "request_review",
        "reviewer",
        "set_parent",
        "severity",
        "shrug",
        "spend",
        "spend_time",
        "spent",
        "squash",
        "status",
        "submit_review",
        "subscribe",
        "tableflip",
        "tag",
        "target_branch",
        "timeline",
        "title",
        "todo",
        "type",
        "unapprove",
        "unassign",
        "unassign_reviewer",
        "unlabel",
        "unlink",
        "unlock",
        "unsubscribe",
        "weight",
        "wip",
        "zoom",
    ]
)

_QUICK_ACTION_LINE = re.compile(r"^([ \t]*)/([A-Za-z][A-Za-z_]{0,39})(?=[ \t\r]|$)", re.MULTILINE)


def quick_action_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, lower-cased command) for each line that GitLab could execute."""
    for match in _QUICK_ACTION_LINE.finditer(text):
        yield match.start(2) - 1, match.end(2), match.group(2).lower()


def neutralise_quick_actions(text: str) -> str:
    """``text`` with a backslash before every quick-action slash (see module docstring)."""
    return _QUICK_ACTION_LINE.sub(r"\1\\/\2", text)
