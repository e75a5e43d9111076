"""Text smuggled as base64 or hex: runs of a suspicious length are decoded and, when
they decode to readable text, screened again (one level deep).

Long runs are common and harmless — images, fonts, integrity hashes, git object ids —
but they decode to binary, which is recognised at once and skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

# A run is taken whole (possessive). No look-behind is needed for a left boundary: the
# search tries a position inside a run only after the run's start failed, which means
# the run was too short. Hex digits are base64 characters, so hex runs lie inside these.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}+={0,2}+")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}+")
MAX_RUN = 65_536


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for char in text if char.isprintable() or char in "\n\r\t")
    return text if text and printable >= 0.95 * len(text) else None


def _from_base64(run: str) -> str | None:
    if not any(c.isdigit() or c in "+/=" for c in run[:64]):
        return None  # a long word or identifier, not an encoding
    padded = run.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        data = (
            base64.urlsafe_b64decode(padded)
            if "-" in run or "_" in run
            else base64.b64decode(padded)
        )
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def decoded_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) for each base64 or hex run that decodes to text."""
    for match in _BASE64_RUN.finditer(text):
        run = match.group()
        if len(run) > MAX_RUN:
            continue
        decoded = None if _HEX_RUN.fullmatch(run) else _from_base64(run)
        if decoded is not None:
            yield match.start(), match.end(), decoded
            continue
        for hex_run in _HEX_RUN.finditer(run):
            digits = hex_run.group()[: len(hex_run.group()) // 2 * 2]
            decoded = _readable(bytes.fromhex(digits))
            if decoded is not None:
                yield match.start() + hex_run.start(), match.start() + hex_run.end(), decoded
