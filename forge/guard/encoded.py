"""Text smuggled as base64 or hex: runs of a suspicious length are decoded and, when
they decode to readable text, screened again (one level deep).

Long runs are common and harmless — images, fonts, integrity hashes, git object ids —
but they decode to binary, which is recognised at once and skipped.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

# A run is taken whole (possessive). No look-behind is needed for a left boundary: the
# search tries a position inside a run only after the run's start failed, which means
# the run was too short. Hex digits are base64 characters, so hex runs lie inside these.
_MIN_RUN = 24
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{_MIN_RUN},}}+={{0,2}}+")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}+")
MAX_RUN = 65_536
# Base64 of anything but a long word holds a digit, "+", "/" or "=" early on.
_ENCODING_HINT = re.compile(r"[0-9+/=]")
# Most texts hold no run of 24 base64 characters. Finding that out with the regex costs
# an attempt at every letter; mapping the text to bytes (one byte per character, as
# "run" or "not run") and looking for 24 "run" bytes in a row is a few C passes.
_RUN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_AS_RUN_BYTES = bytes(ord("a") if byte in _RUN_CHARS else ord(" ") for byte in range(256))
_LONG_RUN_BYTES = b"a" * _MIN_RUN


def long_runs(text: str) -> Iterator[re.Match[str]]:
    """Each run of 24 or more base64 characters (with up to two "=" after it), in order:
    the matches ``_BASE64_RUN.finditer`` would yield, found in the mapped bytes."""
    # One byte per character: every non-ASCII character becomes "?", which is no run.
    mapped = text.encode("ascii", "replace").translate(_AS_RUN_BYTES)
    position = mapped.find(_LONG_RUN_BYTES)
    while position != -1:
        # A run of 24 found leftmost starts a maximal run, where the possessive pattern
        # matches it whole; the next run starts after it.
        match = _BASE64_RUN.match(text, position)
        if match is None:  # pragma: no cover - the mapping and the pattern agree
            raise AssertionError(f"no base64 run at {position}")
        yield match
        position = mapped.find(_LONG_RUN_BYTES, match.end())


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PRINTABLE_ASCII = bytes([*range(0x20, 0x7F), *b"\n\r\t"])
_REPLACEMENT_UTF8 = "\ufffd".encode()


def _readable(data: bytes) -> str | None:
    # Most runs decode to random bytes: rejected here without raising an exception, which
    # costs more than the rest of the check.
    if data.isascii():
        unprintable = len(data.translate(None, _PRINTABLE_ASCII))
        return (
            data.decode("ascii") if data and len(data) - unprintable >= 0.95 * len(data) else None
        )
    if "\ufffd" in data.decode("utf-8", "replace") and _REPLACEMENT_UTF8 not in data:
        return None  # not UTF-8
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for char in text if char.isprintable() or char in "\n\r\t")
    return text if text and printable >= 0.95 * len(text) else None


def _from_base64(run: str) -> str | None:
    if not _ENCODING_HINT.search(run, 0, 64):
        return None  # a long word or identifier, not an encoding
    padded = run.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    encoded = padded.encode("ascii")
    if "-" in run or "_" in run:
        encoded = encoded.translate(_URLSAFE_TO_STANDARD)
    try:
        # What base64.b64decode / urlsafe_b64decode do, without their Python wrappers.
        data = binascii.a2b_base64(encoded)
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def decoded_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) for each base64 or hex run that decodes to text."""
    for match in long_runs(text):
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
