"""GitLab quick actions: ``/merge``, ``/approve``, ``/assign``… at the start of a line.

GitLab runs a quick action found on its own line of a description or note with the
rights of the author — crewline's token. Text crewline posts is often written by an
agent that read untrusted issue text, so every line that could be a quick action is
neutralised before it is sent.

How GitLab finds them (``Gitlab::QuickActions::Extractor``): it first deletes every
``\\r`` from the text, then matches ``/`` at the start of a line, a command name
(case-insensitive), and then a space and arguments, or only whitespace up to the end of
the line — where "whitespace" is Ruby's ``\\s``, so ``\\f`` and ``\\v`` count. So
``\\r/merge``, ``/\\rapprove``, ``/merge\\f`` and ``/approve\\v`` all run. Recent
versions only look inside top-level Markdown paragraphs; older ones ran the regex over
the whole text with a few exclusions. The guard mirrors the union of both: it sees the
text as GitLab does (``\\r`` deleted) and escapes a command line wherever either version
could run it, with some margin: indentation (spaces, tabs, ``\\f``, ``\\v``), block-quote
``>`` markers and list markers before the slash are skipped too.

How: a backslash goes in front of the slash (``\\/merge``): the line no longer starts
with ``/`` for GitLab, and ``\\/`` is a CommonMark escape, so the note still reads
``/merge``. Escaping is idempotent.

Which command words: any ``/word`` of letters and underscores (at most 40), not only
``QUICK_ACTIONS``: GitLab adds commands every release, and escaping an unknown word
changes nothing a reader sees. Digits are not allowed, so a line of wrapped base64
that happens to start with ``/`` is not rewritten.

Left untouched: lines inside a fenced code block that every GitLab version skips — a
fence opened by exactly three backticks at column 0 and closed by a line that is exactly
three backticks, when that line is also the first line CommonMark accepts as the closing
fence. Tilde fences, indented fences and unclosed fences are escaped: older versions ran
commands inside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

# Commands and aliases documented by GitLab (issues, merge requests, epics, work items,
# incidents, commits). Informational: the neutraliser escapes any ``/word`` line.
QUICK_ACTIONS: Final[frozenset[str]] = frozenset(
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

# Before the slash: indentation (Ruby's \s without the newline), block-quote markers,
# and list markers followed by whitespace. Every alternative starts with a different
# character, so the repetition cannot backtrack.
_LINE_PREFIX: Final = r"(?:[ \t\f\v>]|[-*+](?=[ \t\f\v])|[0-9]{1,9}[.)](?=[ \t\f\v]))*+"
_COMMAND: Final = re.compile(_LINE_PREFIX + r"(/)([A-Za-z][A-Za-z_]{0,39})(?=[ \t\f\v]|$)")
_FENCE_OPEN: Final = re.compile(r"```[^`]*")
_FENCE_CLOSE: Final = re.compile(r" {0,3}```+[ \t]*")
# A necessary condition of a command line, checked at C speed before any line is split:
# a "/" preceded on its line (of the original text, where "\r" is not yet deleted) only
# by characters ``_LINE_PREFIX`` accepts or "\r". Most notes with a "/" have it in a
# path or URL, never there. The "\n" form opens with a literal, so only line breaks are
# tried.
_SLASH_PREFIX: Final = r"[ \t\f\v\r>*+\-0-9.)]*+/"
_FIRST_LINE_SLASH: Final = re.compile(_SLASH_PREFIX)
_LATER_LINE_SLASH: Final = re.compile("\n" + _SLASH_PREFIX)


def _may_hold_command(text: str) -> bool:
    return "/" in text and bool(_FIRST_LINE_SLASH.match(text) or _LATER_LINE_SLASH.search(text))


def _gitlab_view(text: str) -> tuple[str, list[int] | None]:
    """The text as GitLab's extractor sees it (every ``\\r`` deleted), and the offset in
    ``text`` of each character of that view (``None`` when nothing was deleted)."""
    if "\r" not in text:
        return text, None
    kept = [index for index, char in enumerate(text) if char != "\r"]
    return text.replace("\r", ""), kept


def _fenced_lines(lines: list[str]) -> set[int]:
    """Indices of the lines inside the code fences every GitLab version skips."""
    # The first closing-fence line after each line, found in one backward pass.
    next_close: list[int | None] = [None] * len(lines)
    following: int | None = None
    for index in range(len(lines) - 1, -1, -1):
        next_close[index] = following
        if _FENCE_CLOSE.fullmatch(lines[index]):
            following = index
    inside: set[int] = set()
    index = 0
    while index < len(lines):
        close = next_close[index]
        if close is not None and lines[close] == "```" and _FENCE_OPEN.fullmatch(lines[index]):
            inside.update(range(index + 1, close))
            index = close
        index += 1
    return inside


def quick_action_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, lower-cased command) in ``text`` for each line GitLab could execute;
    ``start`` is the offset of the slash."""
    if not _may_hold_command(text):
        return
    view, offsets = _gitlab_view(text)
    lines = view.split("\n")
    fenced = _fenced_lines(lines) if "```" in view else set()
    line_start = 0
    for number, line in enumerate(lines):
        if "/" in line and number not in fenced:
            match = _COMMAND.match(line)
            if match:
                start, end = line_start + match.start(1), line_start + match.end(2)
                if offsets is not None:
                    start, end = offsets[start], offsets[end - 1] + 1
                yield start, end, match.group(2).lower()
        line_start += len(line) + 1


def neutralise_quick_actions(text: str) -> str:
    """``text`` with a backslash before every quick-action slash (see module docstring)."""
    if not _may_hold_command(text):
        return text  # most notes: no command can start
    pieces = []
    previous = 0
    for start, _, _ in quick_action_spans(text):
        pieces += [text[previous:start], "\\"]
        previous = start
    if not pieces:
        return text
    pieces.append(text[previous:])
    return "".join(pieces)
