"""Instructions hidden from the human reader but not from a model: HTML comments and
collapsed ``<details>`` blocks addressed to an AI, and Markdown images whose URL carries
data out (a model that renders the image sends the data to whoever owns the host).

A comment is reported only when it both addresses a model and tells it to do something:
ordinary comments (``<!-- TODO -->``, template hints, crewline's own note markers) pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from forge.guard.scantext import ScanText, register_anchors

HIDDEN_RULE: Final = "injection.hidden_instruction"
EXFILTRATION_RULE: Final = "injection.data_exfiltration"
_MAX_COMMENT: Final = 8_000
_ADDRESSEE: Final = re.compile(
    r"\b(?:ai|llms?|(?:large\s+)?language\s+models?|(?:ai|coding|autonomous|automated)\s+"
    r"(?:agents?|assistants?|reviewers?)|assistant|copilot|claude|chatgpt|gpt(?:-?\d)?|gemini"
    r"|chatbots?)\b"
)
_IMPERATIVE: Final = re.compile(
    r"\b(?:you\s+(?:must|should|will|need\s+to|are\s+to)|always|never|ignore|disregard"
    r"|do\s+not|don'?t|instead|secretly|quietly|silently|without\s+telling|execute|run\s+the"
    r"|send|post|upload|exfiltrate|reveal|approve|merge|delete|push|include\s+the)\b"
)
_IMAGE: Final = re.compile(r"!\[[^\]\n]{0,300}+\]\([ \t]{0,4}+<?(?P<url>[^\s)>]{1,4000}+)")
_DATA_VALUE: Final = re.compile(r"[A-Za-z0-9%+/=_.-]{32,}")
# Signed-URL parameters and cache busters: long by nature, not data being carried out.
_BENIGN_QUERY_KEYS: Final = frozenset(
    ["signature", "sig", "se", "sv", "sp", "st", "sr", "expires", "v", "ver", "version",
     "rev", "hash", "cb", "cache"]
)  # fmt: skip
_BENIGN_QUERY_PREFIXES: Final = ("x-amz-", "x-goog-")
_OPENINGS: Final = register_anchors(("<!--", "<details", "!["), "lowered")
# The bits of ``ScanText.found`` without one of which nothing is hidden.
GATE: Final = _OPENINGS.mask


def _addresses_a_model(body: str) -> bool:
    return bool(_ADDRESSEE.search(body)) and bool(_IMPERATIVE.search(body))


def _blocks(lowered: str, opening: str, closing: str, limit: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each ``opening … closing`` block at most ``limit`` long."""
    position = lowered.find(opening)
    while position != -1:
        close = lowered.find(closing, position + len(opening))
        if close == -1:
            return  # no block closes after here: nothing further can be a block
        end = close + len(closing)
        if end - position <= limit:
            yield position, end
        position = lowered.find(opening, end)


def hidden_instruction_hits(scan: ScanText) -> Iterator[tuple[str, int, int, str]]:
    if not scan.has_any(_OPENINGS):
        return
    lowered = scan.lowered
    for start, end in _blocks(lowered, "<!--", "-->", _MAX_COMMENT):
        if _addresses_a_model(lowered[start + 4 : end - 3]):
            yield HIDDEN_RULE, start, end, "an HTML comment with instructions for an AI"
    for start, end in _blocks(lowered, "<details", "</details>", _MAX_COMMENT):
        if _addresses_a_model(lowered[start:end]):
            yield HIDDEN_RULE, start, end, "a collapsed <details> block with instructions for an AI"
    for match in _IMAGE.finditer(scan.text) if "![" in scan.text else ():
        if _carries_data(match.group("url")):
            start, end = match.span("url")
            yield EXFILTRATION_RULE, start, end, "an image whose URL carries data to its host"


def _carries_data(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") and not url.startswith("//"):
        return False
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _BENIGN_QUERY_KEYS or key.lower().startswith(_BENIGN_QUERY_PREFIXES):
            continue
        if _DATA_VALUE.fullmatch(value) or len(value) >= 64:
            return True
    segments = [segment for segment in parts.path.split("/") if segment]
    return any(len(segment) >= 48 and _DATA_VALUE.fullmatch(segment) for segment in segments)
