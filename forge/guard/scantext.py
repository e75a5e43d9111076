"""The text being screened, prepared once for every rule.

Speed matters (every write is screened), and Python's regex engine is slow on
case-insensitive alternations and on patterns that open with a look-behind: both
defeat its literal-prefix search. So case-insensitive rules match lower-case
patterns against a lower-cased copy with identical offsets, and word boundaries on
the left are checked here in Python instead of with a look-behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
WORD = ALNUM | {"_"}
TOKEN = WORD | {"-"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ScanText:
    text: str
    lowered: str = field(init=False)

    def __post_init__(self) -> None:
        lowered = self.text.lower()
        if len(lowered) != len(self.text):
            # A few characters (e.g. "İ") lower-case to two code points; keep offsets aligned.
            lowered = self.text.translate(_ASCII_LOWER)
        object.__setattr__(self, "lowered", lowered)

    def preceded_by(self, index: int, chars: frozenset[str]) -> bool:
        """True when the character before ``index`` is one of ``chars``."""
        return index > 0 and self.text[index - 1] in chars

    def starts_line(self, index: int, indent: str = " \t>") -> bool:
        """True when only ``indent`` characters stand between a line start and ``index``."""
        line_start = self.text.rfind("\n", 0, index) + 1
        return all(char in indent for char in self.text[line_start:index])


def find_matches(
    pattern: re.Pattern[str],
    haystack: str,
    anchors: tuple[str, ...],
    skip_run: re.Pattern[str] | None = None,
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of ``pattern``, which must start with one of the literal
    ``anchors``, in text order.

    ``str.find`` locates the anchors at C speed and the regex runs only there: far faster
    than ``finditer`` for patterns that open with an alternation. An anchor inside the
    previous match is skipped, so a run of repeated anchors (``glpat-glpat-…``) costs one
    attempt, not one per anchor: with every pattern built so that a failed attempt stops
    after a bounded number of steps (possessive runs, bounded repeats), the whole search
    is linear in the length of the text.

    ``skip_run``: for a pattern that opens with its anchor and a possessive run of one
    character class containing the anchor's characters, and whose outcome depends only on
    what follows the run: after a failed attempt, every anchor inside that run would fail
    the same way, so the search resumes after it.
    """
    positions: set[int] = set()
    for anchor in anchors:
        position = haystack.find(anchor)
        while position != -1:
            positions.add(position)
            position = haystack.find(anchor, position + 1)
    end = -1
    for position in sorted(positions):
        if position < end:
            continue
        match = pattern.match(haystack, position)
        if match:
            end = match.end()
            yield match
        elif skip_run is not None:
            run = skip_run.match(haystack, position)
            end = run.end() if run else end
