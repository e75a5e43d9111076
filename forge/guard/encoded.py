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

# A run must start at a boundary (checked by the look-behind, which fails at once inside
# a run) and is taken whole (possessive), so each character is looked at a bounded
# number of times.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}+={0,2}+")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}+(?![0-9A-Fa-f])")
MAX_RUN = 65_536


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for char in text if char.isprintable() or char in "\n\r\t")
    return text if text and printable >= 0.95 * len(text) else None


def decoded_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) for each base64 or hex run that decodes to text."""
    for match in _BASE64_RUN.finditer(text):
        run = match.group()
        if len(run) > MAX_RUN or not any(c.isdigit() or c in "+/=" for c in run[:64]):
            continue  # a long word or identifier, not an encoding
        padded = run.rstrip("=")
        padded += "=" * (-len(padded) % 4)
        try:
            data = (
                base64.urlsafe_b64decode(padded)
                if "-" in run or "_" in run
                else base64.b64decode(padded)
            )
        except (binascii.Error, ValueError):
            continue
        decoded = _readable(data)
        if decoded is not None:
            yield match.start(), match.end(), decoded
    for match in _HEX_RUN.finditer(text):
        if len(match.group()) <= MAX_RUN:
            decoded = _readable(bytes.fromhex(match.group()))
            if decoded is not None:
                yield match.start(), match.end(), decoded
