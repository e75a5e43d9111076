"""Invisible Unicode: characters that hide text from the humans reviewing it.

- Tag characters (U+E0000–U+E007F) spell out ASCII invisibly: the classic carrier for
  instructions a model reads and a reviewer cannot see.
- Bidi controls (U+202A–U+202E, U+2066–U+2069) reorder what is displayed ("Trojan Source").
- Zero-width characters (U+200B–U+200D, U+2060, U+FEFF) split or hide words. Two uses
  are legitimate and pass: U+FEFF as a byte-order mark at the very start, and the
  joiners U+200C/U+200D between two non-ASCII characters (emoji sequences such as
  👩‍💻, and the scripts — Persian, Indic — that need them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

_REMOVE: Final = "it can hide or reorder text so reviewers do not see what is sent; remove it"

_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff")
# A run of the same character is one hit. A character class first lets the regex
# engine scan for candidates at C speed.
_BMP_SUSPECT: Final = re.compile("([\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069])\\1*")
# A run of tag characters is one finding. Matching astral ranges is slow in ``re``, so
# the search runs only when the UTF-8 form holds a tag character's lead bytes.
_TAG_RUN: Final = re.compile("[\U000e0000-\U000e007f]+")
_TAG_UTF8_LEADS: Final = (b"\xf3\xa0\x80", b"\xf3\xa0\x81")
_JOINERS: Final = "\u200c\u200d"
MAX_HITS: Final = 256


@dataclass(frozen=True)
class UnicodeHit:
    rule: str
    start: int
    end: int
    codepoints: str
    reason: str


def _codepoint_label(char: str) -> str:
    name = unicodedata.name(char, "unnamed")
    return f"U+{ord(char):04X} {name}"


def _is_visible_non_ascii(char: str) -> bool:
    return ord(char) > 0x7F and char not in _ZERO_WIDTH


def _legitimate_zero_width(text: str, start: int, end: int) -> bool:
    """A single byte-order mark at the start, or a single joiner between two visible
    non-ASCII characters."""
    if end - start != 1:
        return False
    char = text[start]
    if char == "\ufeff" and start == 0:
        return True
    if char in _JOINERS and start > 0 and end < len(text):
        return _is_visible_non_ascii(text[start - 1]) and _is_visible_non_ascii(text[end])
    return False


def _has_tag_characters(text: str) -> bool:
    data = text.encode("utf-8", "surrogatepass")
    return any(lead in data for lead in _TAG_UTF8_LEADS)


def unicode_hits(text: str) -> Iterator[UnicodeHit]:
    """Every invisible or reordering character that has no legitimate reason to be there."""
    if text.isascii():
        return
    if _has_tag_characters(text):
        for match in _TAG_RUN.finditer(text):
            yield UnicodeHit(
                "unicode.tag_characters",
                match.start(),
                match.end(),
                f"{len(match.group())} tag character(s) starting {_codepoint_label(match.group()[0])}",
                f"invisible Unicode tag characters found; {_REMOVE}",
            )
    reported = 0
    for match in _BMP_SUSPECT.finditer(text):
        if reported >= MAX_HITS:
            return  # enough to refuse the write; redaction goes round again for the rest
        char = match.group()[0]
        if char in _BIDI:
            reported += 1
            yield UnicodeHit(
                "unicode.bidi_control",
                match.start(),
                match.end(),
                _codepoint_label(char),
                f"a bidirectional control character found; {_REMOVE}",
            )
        elif not _legitimate_zero_width(text, match.start(), match.end()):
            reported += 1
            yield UnicodeHit(
                "unicode.zero_width",
                match.start(),
                match.end(),
                _codepoint_label(char),
                f"a zero-width character found mid-text; {_REMOVE}",
            )
