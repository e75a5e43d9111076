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
# Every literal a rule starts its search at, registered by the rules as they are built;
# per text, one pass finds which occur, and rules whose anchors are all absent are skipped.
# Kinds: "token" anchors open a credential, so they occur inside a long run of token
# characters and are looked for in those runs only (a small part of most texts);
# "lowered" and "raw" anchors are searched in the lower-cased or original text.
AnchorKind = str
_ANCHORS: dict[AnchorKind, set[str]] = {
    "token": set(),
    "word": set(),
    "lowered": set(),
    "raw": set(),
}
_LONG_RUN = re.compile(r"[A-Za-z0-9_.+/=~@%:-]{18,}")


def register_anchors(anchors: tuple[str, ...], kind: AnchorKind) -> frozenset[str]:
    """Record ``anchors`` of ``kind`` (see above); returns them as a set."""
    _ANCHORS[kind].update(anchors)
    return frozenset(anchors)


@dataclass(frozen=True)
class ScanText:
    text: str
    lowered: str = field(init=False)
    _present: dict[AnchorKind, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lowered = self.text.lower()
        if len(lowered) != len(self.text):
            # A few characters (e.g. "İ") lower-case to two code points; keep offsets aligned.
            lowered = self.text.translate(_ASCII_LOWER)
        object.__setattr__(self, "lowered", lowered)
        object.__setattr__(self, "_present", {})

    def has_any(self, anchors: frozenset[str], kind: AnchorKind) -> bool:
        """Whether any of ``anchors`` (registered with ``register_anchors``) occurs."""
        present = self._present.get(kind)
        if present is None:
            present = self._find_present(kind)
            self._present[kind] = present
        return not anchors.isdisjoint(present)

    def _find_present(self, kind: AnchorKind) -> frozenset[str]:
        if kind == "token":
            haystack = "\n".join(_LONG_RUN.findall(self.text))
        else:
            haystack = self.lowered if kind == "lowered" else self.text
        return frozenset([a for a in _ANCHORS[kind] if a in haystack]) if haystack else frozenset()

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
