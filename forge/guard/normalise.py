"""The text as a reader (or a model) understands it, for the injection rules.

Injection phrases are matched after NFKC normalisation (fullwidth and mathematical
letters become ASCII), with invisible and bidirectional-control characters removed (the
Unicode rules have reported them already) and common homoglyphs (Cyrillic and Greek
letters that look Latin) folded, so ``ｉｇｎｏｒｅ``, ``ig\u200bnore`` and ``іgnore``
(Cyrillic і) all read ``ignore``. Findings are mapped back to offsets in the original
text. ASCII text (most writes) is returned as is, at no cost, and text already in NFKC
without invisible characters (most of the rest) needs only the homoglyphs folded.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

# Removed before matching: zero-width and joiner characters, bidi controls and marks,
# soft hyphen, word joiner and invisible operators, variation selectors, tag characters,
# Hangul fillers and the Mongolian vowel separator.
_INVISIBLE: Final = frozenset(
    [
        *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
        *range(0x200B, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2070),
        *range(0xFE00, 0xFE10),
        *range(0xE0000, 0xE0080),
        *range(0xE0100, 0xE01F0),
    ]
)
# Letters from other scripts that render like Latin ones.
# fmt: off
_HOMOGLYPHS: Final = str.maketrans(
    {
        **dict.fromkeys("аɑα", "a"), **dict.fromkeys("ВΒв", "B"), **dict.fromkeys("сϲ", "c"),
        **dict.fromkeys("ԁ", "d"), **dict.fromkeys("еε", "e"), **dict.fromkeys("һ", "h"),
        **dict.fromkeys("іιɩ", "i"), **dict.fromkeys("ј", "j"), **dict.fromkeys("κк", "k"),
        **dict.fromkeys("ӏ", "l"), **dict.fromkeys("ոη", "n"), **dict.fromkeys("оοσ", "o"),
        **dict.fromkeys("рρ", "p"), **dict.fromkeys("ԛ", "q"), **dict.fromkeys("ѕ", "s"),
        **dict.fromkeys("τт", "t"), **dict.fromkeys("υս", "u"), **dict.fromkeys("ѵν", "v"),
        **dict.fromkeys("ԝω", "w"), **dict.fromkeys("хχ", "x"), **dict.fromkeys("уγ", "y"),
        **dict.fromkeys("АΑ", "A"), **dict.fromkeys("СϹ", "C"), **dict.fromkeys("ЕΕ", "E"),
        **dict.fromkeys("НΗ", "H"), **dict.fromkeys("ІΙ", "I"), **dict.fromkeys("ЈͿ", "J"),
        **dict.fromkeys("КΚ", "K"), **dict.fromkeys("МΜ", "M"), **dict.fromkeys("ΝN", "N"),
        **dict.fromkeys("ОΟ", "O"), **dict.fromkeys("РΡ", "P"), **dict.fromkeys("ЅS", "S"),
        **dict.fromkeys("ТΤ", "T"), **dict.fromkeys("ХΧ", "X"), **dict.fromkeys("УΥ", "Y"),
        **dict.fromkeys("ΖZ", "Z"), "ı": "i", "ⅼ": "l",
    }
)
# fmt: on
# Only the non-ASCII ones: the table also maps "N", "S" and "Z" to themselves, and only
# non-ASCII runs are folded, so an ASCII letter must not send a text down that path
# (it used to: a new, identical text, scanned a second time).
_HOMOGLYPH_CHARS: Final = frozenset(char for char in map(chr, _HOMOGLYPHS) if not char.isascii())
_NON_ASCII_RUN: Final = re.compile(r"[^\x00-\x7f]+")


def _has_invisible(text: str) -> bool:
    return _has_invisible_in(set(text))


def _has_invisible_in(distinct: set[str]) -> bool:
    # On the distinct characters: a regex class of the ~370 code points (most of them
    # astral, which the engine tests one by one) cost ~1.5 us per character of text.
    return any(ord(char) in _INVISIBLE for char in distinct if char > "\x7f")


def _fold_run(run: re.Match[str]) -> str:
    # Only the non-ASCII runs: ``str.translate`` with a dict costs a lookup per character.
    return run.group().translate(_HOMOGLYPHS)


@lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    if ord(char) in _INVISIBLE:
        return ""
    return unicodedata.normalize("NFKC", char).translate(_HOMOGLYPHS)


@dataclass(frozen=True)
class Normalised:
    """``text`` as normalised, and how its offsets map back to the original.

    ``pieces`` holds ``(normalised offset, original offset)`` at the start of every
    stretch that was copied or rewritten; empty when nothing changed.
    """

    text: str
    pieces: tuple[tuple[int, int], ...] = ()

    def original(self, offset: int) -> int:
        """The offset in the original text of the normalised ``offset``."""
        if not self.pieces:
            return offset
        index = bisect_right(self.pieces, (offset, 1 << 62)) - 1
        if index < 0:
            return offset
        normalised, original = self.pieces[index]
        next_original = self.pieces[index + 1][1] if index + 1 < len(self.pieces) else None
        result = original + (offset - normalised)
        return min(result, next_original) if next_original is not None else result


def normalise(text: str) -> Normalised:
    if text.isascii():
        return Normalised(text)
    distinct = set(text)
    if not _has_invisible_in(distinct) and unicodedata.is_normalized("NFKC", text):
        # Every character stays one character (the usual case): offsets are unchanged.
        if _HOMOGLYPH_CHARS.isdisjoint(distinct):
            return Normalised(text)
        return Normalised(_NON_ASCII_RUN.sub(_fold_run, text))
    parts: list[str] = []
    pieces: list[tuple[int, int]] = []
    length = 0
    copied_to = 0
    for run in _NON_ASCII_RUN.finditer(text):
        if run.start() > copied_to:
            pieces.append((length, copied_to))
            parts.append(text[copied_to : run.start()])
            length += run.start() - copied_to
        chars = run.group()
        whole = unicodedata.normalize("NFKC", chars).translate(_HOMOGLYPHS)
        if len(whole) == len(chars) and not _has_invisible(chars):
            # One character for one (the usual case): the run maps back as a block.
            pieces.append((length, run.start()))
            parts.append(whole)
            length += len(whole)
        else:
            for offset, char in enumerate(chars, run.start()):
                folded = _fold(char)
                pieces.append((length, offset))
                parts.append(folded)
                length += len(folded)
        copied_to = run.end()
    if copied_to < len(text):
        pieces.append((length, copied_to))
        parts.append(text[copied_to:])
    return Normalised("".join(parts), tuple(pieces))
