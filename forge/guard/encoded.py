"""Text smuggled as base64 or hex: runs of a suspicious length are decoded and, when
they decode to readable text, screened again (one level deep).

Long runs are common and harmless — images, fonts, integrity hashes, git object ids —
but they decode to binary, which is recognised at once and skipped.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from typing import Final

from forge.guard.scantext import LONG_RUN_BYTES, MIN_RUN, run_map

# A run is taken whole (possessive). No look-behind is needed for a left boundary: the
# search tries a position inside a run only after the run's start failed, which means
# the run was too short. Hex digits are base64 characters, so hex runs lie inside these.
_BASE64_RUN: Final = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_RUN},}}+={{0,2}}+")
MAX_RUN: Final = 65_536
# Base64 of anything but a long word holds a digit, "+", "/" or "=" early on.
_ENCODING_HINT: Final = re.compile(rb"[0-9+/=]")
# Hex runs (32 digits or more) are found like base64 runs (see ``scantext.run_map``):
# hex digits mapped to "h", anything else to a space, and 32 "h" in a row looked for
# with ``bytes.find``.
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"
_HEX_MAP: Final = bytes(ord("h") if byte in _HEX_DIGITS else ord(" ") for byte in range(256))
_LONG_HEX: Final = b"h" * 32
_HEX_RUN: Final = len(_LONG_HEX)
_PAD: Final = ord("=")


def long_runs(text: str, runs: bytes | None = None) -> Iterator[re.Match[str]]:
    """Each run of 24 or more base64 characters (with up to two "=" after it), in order:
    the matches ``_BASE64_RUN.finditer`` would yield, found in ``runs`` (the text mapped
    by ``scantext.run_map``, computed when not given)."""
    mapped = run_map(text) if runs is None else runs
    position = mapped.find(LONG_RUN_BYTES)
    while position != -1:
        # A run of 24 found leftmost starts a maximal run, where the possessive pattern
        # matches it whole; the next run starts after it.
        match = _BASE64_RUN.match(text, position)
        if match is None:  # pragma: no cover - the mapping and the pattern agree
            raise AssertionError(f"no base64 run at {position}")
        yield match
        position = mapped.find(LONG_RUN_BYTES, match.end())


_URLSAFE_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
_PRINTABLE_ASCII: Final = bytes([*range(0x20, 0x7F), *b"\n\r\t"])
_CONTROL: Final = bytes([*(byte for byte in range(0x20) if byte not in b"\n\r\t"), 0x7F])
_REPLACEMENT_UTF8: Final = "\ufffd".encode()


def _few_controls(data: bytes) -> bool:
    """False when ``data`` cannot be readable on its control bytes alone.

    Most runs decode to random bytes: rejected here without decoding them. A control byte
    is one unprintable character however the rest decodes, so more than one in 19 bytes
    already means more than 5% unprintable characters. The hot callers ask this first and
    call :func:`_printable_text` only on what passes (a call less per random run)."""
    return len(data) - len(data.translate(None, _CONTROL)) <= len(data) / 19


def _readable(data: bytes) -> str | None:
    """``data`` as text when at least 95% of it is printable UTF-8, else None."""
    return _printable_text(data) if _few_controls(data) else None


def _printable_text(data: bytes) -> str | None:
    """:func:`_readable` for ``data`` that passed :func:`_few_controls`."""
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


def _from_base64(run: bytes) -> str | None:
    if not _ENCODING_HINT.search(run, 0, 64):
        return None  # a long word or identifier, not an encoding
    padded = run.rstrip(b"=")
    if len(padded) % 4 == 1:
        # ``a2b_base64`` refuses one character past a multiple of four however it is
        # padded: answered here, without the cost of an exception.
        return None
    # The URL-safe alphabet mapped to the standard one: a no-op on a run without "-"
    # or "_", and cheaper than looking for them first.
    padded = (padded + b"=" * (-len(padded) % 4)).translate(_URLSAFE_TO_STANDARD)
    try:
        # What base64.b64decode / urlsafe_b64decode do, without their Python wrappers.
        data = binascii.a2b_base64(padded)
    except (binascii.Error, ValueError):
        return None
    return _printable_text(data) if _few_controls(data) else None


def decoded_runs(text: str, runs: bytes | None = None) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) for each base64 or hex run that decodes to text.

    ``runs``: the text mapped by ``scantext.run_map``, when the caller has it."""
    mapped = run_map(text) if runs is None else runs
    start = mapped.find(LONG_RUN_BYTES)
    if start == -1:
        return
    # One byte per character ("?" for non-ASCII): within a run these are its characters,
    # at the same offsets. The runs are those of ``long_runs``, found on the byte maps
    # alone, and each is handled inline: a text with one run usually holds dozens (a
    # lockfile, a log of request ids), nearly all random, so per-run calls add up.
    raw = text.encode("ascii", "replace")
    hexes = raw.translate(_HEX_MAP)
    size = len(raw)
    while start != -1:
        end = mapped.find(b" ", start)
        end = size if end == -1 else end
        if end < size and raw[end] == _PAD:  # up to two "=" of padding belong to the run
            end += 2 if end + 1 < size and raw[end + 1] == _PAD else 1
        length = end - start
        if length > MAX_RUN:
            pass
        elif length >= _HEX_RUN and hexes.find(b" ", start, end) == -1:
            # Hex digits only: base64 is not tried, the run is one hex run.
            data = binascii.unhexlify(raw[start : start + length // 2 * 2])
            decoded = _printable_text(data) if _few_controls(data) else None
            if decoded is not None:
                yield start, end, decoded
        else:
            decoded = _from_base64(raw[start:end])
            if decoded is not None:
                yield start, end, decoded
            elif length >= _HEX_RUN and hexes.find(_LONG_HEX, start, end) != -1:
                for hex_start, hex_end in hex_runs(hexes, start, end):
                    digits = raw[hex_start : hex_start + (hex_end - hex_start) // 2 * 2]
                    decoded = _readable(binascii.unhexlify(digits))
                    if decoded is not None:
                        yield hex_start, hex_end, decoded
        start = mapped.find(LONG_RUN_BYTES, end)


def hex_map(text: str) -> bytes:
    """``text`` as one byte per character: ``h`` for a hex digit, else a space."""
    return text.encode("ascii", "replace").translate(_HEX_MAP)


def hex_runs(hexes: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each maximal run of 32 or more hex digits in ``hexes[start:end]``
    (``hexes`` from ``hex_map``), as ``re.finditer(r"[0-9A-Fa-f]{32,}+")`` finds them."""
    position = hexes.find(_LONG_HEX, start, end)
    while position != -1:
        # Found leftmost, a run of 32 starts a maximal run (as in ``long_runs``).
        run_end = hexes.find(b" ", position, end)
        run_end = end if run_end == -1 else run_end
        yield position, run_end
        position = hexes.find(_LONG_HEX, run_end, end)
