"""Private-key blocks, however they are quoted.

A header alone is fine (parsers and docs mention it); a header followed by key material
is not. Between the two the guard skips what wraps a key when it is pasted somewhere:
Markdown quoting (``> ``), comment markers (``#``, ``//``, ``;``, ``*``), string
quotes and concatenation (``"…\\n" + "…"``), escaped line breaks (``\\n``, ``\\r\\n``)
and PEM header lines (``Proc-Type: …``). Done step by step in Python rather than with
one regex: nested repetitions over overlapping alphabets are what made the old pattern
backtrack exponentially. Every step moves forward, so the cost is linear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from forge.guard.scantext import ScanText, register_anchors
from forge.guard.secret_rules import ROTATE, SecretHit

RULE: Final = "secret.private_key"
_HEADER: Final = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
# What may stand between the header and the key material. Every alternative starts with
# a different character (a backslash only before r, n or t), so nothing backtracks.
_WRAPPING: Final = re.compile(r"(?:[\s>#;*+,\"'`(]|\\[rnt]|//)*+")
_PEM_FIELD: Final = re.compile(r"[A-Za-z][A-Za-z-]{0,30}:")
_MATERIAL: Final = re.compile(r"[A-Za-z0-9+/=]*")
_MIN_MATERIAL: Final = 32
_MAX_FIELDS: Final = 4
_END_SEARCH: Final = 20_000
# The bits of ``ScanText.found`` without one of which there is no key block.
GATE: Final = register_anchors(("-----BEGIN ",), "raw").mask


def _looks_like_key_material(run: str) -> bool:
    """Base64 of random bytes: long, with digits and both cases (not a camelCase name)."""
    return (
        len(run) >= _MIN_MATERIAL
        and any(c.isdigit() for c in run)
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
    )


def _material_after(text: str, position: int) -> tuple[int, int] | None:
    """Where the key material after a header starts and ends, if there is any."""
    for _ in range(_MAX_FIELDS + 1):
        wrapping = _WRAPPING.match(text, position)
        position = wrapping.end() if wrapping else position
        run = _MATERIAL.match(text, position)
        if run and _looks_like_key_material(run.group()):
            return run.start(), run.end()
        if not _PEM_FIELD.match(text, position):
            return None
        # A PEM field ("Proc-Type: 4,ENCRYPTED"): skip to the end of its line.
        line_ends = [i for i in (text.find("\n", position), text.find("\\n", position)) if i != -1]
        if not line_ends:
            return None
        position = min(line_ends)
    return None


def private_key_hits(scan: ScanText) -> Iterator[SecretHit]:
    text = scan.text
    position = text.find("-----BEGIN ")
    while position != -1:
        header = _HEADER.match(text, position)
        next_from = position + 1
        if header:
            material = _material_after(text, header.end())
            if material is not None:
                # The whole block, up to its END line when there is one nearby.
                end_line = text.find("-----END ", material[1], material[1] + _END_SEARCH)
                end = material[1]
                if end_line != -1:
                    closing = text.find("-----", end_line + 9, end_line + 80)
                    end = closing + 5 if closing != -1 else end_line + 9
                yield SecretHit(RULE, position, end, f"a private key block found; {ROTATE}")
                next_from = end
        position = text.find("-----BEGIN ", next_from)
