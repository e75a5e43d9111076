"""Safe rendering of text crewline did not write (issue titles, plans, agents' questions,
failure reasons) into Discord messages.

Such text never pings anyone (every send also passes ``NO_MENTIONS``), never turns into
markdown that escapes its place (a title with ``**`` or an unclosed code fence cannot
restyle the card), and is cut to Discord's limits with a link to the full text in GitLab.
"""

from __future__ import annotations

import re
from typing import Final

import discord

NO_MENTIONS: Final = discord.AllowedMentions.none()

# Discord's limits (characters).
CONTENT: Final = 2000
EMBED_TITLE: Final = 256
EMBED_DESCRIPTION: Final = 4096
FIELD_NAME: Final = 256
FIELD_VALUE: Final = 1024
FOOTER: Final = 2048
EMBED_TOTAL: Final = 6000
MODAL_TITLE: Final = 45
BUTTON_LABEL: Final = 80
THREAD_NAME: Final = 100

ZWSP: Final = "\u200b"
ELLIPSIS: Final = "…"
_MENTION = re.compile(r"<(?=[@#]|/|a?:)")
_EVERYONE = re.compile(r"@(?=everyone|here)")
_LINE_START = re.compile(r"^(\s*)([#>\-*+]|\d+\.)", re.MULTILINE)
_URL = re.compile(r"^https?://[^\s()<>]+$")


def _defuse(text: str) -> str:
    """No mention of any kind survives as one, even rendered."""
    return _EVERYONE.sub("@" + ZWSP, _MENTION.sub("<" + ZWSP, text))


def cut(text: str, limit: int, more: str = "") -> str:
    """``text`` within ``limit`` characters; when cut, ``more`` (a link) is appended."""
    if len(text) <= limit:
        return text
    tail = f"{ELLIPSIS} {more}" if more else ELLIPSIS
    return text[: max(0, limit - len(tail))].rstrip() + tail


def link(label: str, url: str) -> str:
    """A markdown link whose label is plain text; just the label for a doubtful URL."""
    shown = plain(label, 200)
    return f"[{shown}]({url})" if _URL.match(url or "") else shown


def more_link(url: str) -> str:
    return link("more in GitLab", url) if url else ""


def plain(text: str, limit: int, url: str = "") -> str:
    """One line of untrusted text: whitespace collapsed, markdown and mentions escaped."""
    flat = " ".join(text.split())
    escaped = _defuse(discord.utils.escape_markdown(flat)).replace("]", "\\]")
    escaped = _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)
    return _cut_escaped(escaped, limit, more_link(url))


def _cut_escaped(text: str, limit: int, more: str) -> str:
    if len(text) <= limit:
        return text
    shortened = cut(text, limit, more)
    # A cut must not leave a lone backslash that would escape our ellipsis.
    head, _, tail = shortened.partition(ELLIPSIS)
    if head.endswith("\\") and not head.endswith("\\\\"):
        head = head[:-1]
    return head + ELLIPSIS + tail


def block(text: str, limit: int, url: str = "", language: str = "") -> str:
    """Untrusted multi-line text shown verbatim in a code block it cannot close."""
    body = _defuse(text.strip().replace("```", f"`{ZWSP}`{ZWSP}`")) or "(empty)"
    more = more_link(url)
    fence_open, fence_close = f"```{language}\n", "\n```"
    room = limit - len(fence_open) - len(fence_close) - (len(more) + 1 if more else 0)
    if len(body) <= limit - len(fence_open) - len(fence_close):
        return f"{fence_open}{body}{fence_close}"
    shortened = body[: max(0, room - 1)].rstrip("`" + ZWSP) + ELLIPSIS
    return f"{fence_open}{shortened}{fence_close}" + (f"\n{more}" if more else "")


def strip_details(markdown: str) -> str:
    """A plan note without its machine-readable ``<details>`` JSON."""
    return re.sub(r"<details>.*?</details>", "", markdown, flags=re.DOTALL).strip()
