"""The text being screened, prepared once for every rule.

Speed matters (every write is screened), and Python's regex engine is slow on
case-insensitive alternations and on patterns that open with a look-behind: both
defeat its literal-prefix search. So case-insensitive rules match lower-case
patterns against a lower-cased copy with identical offsets, and word boundaries on
the left are checked here in Python instead of with a look-behind.

Most writes trigger no rule at all, so the first step is a prefilter (decisions 0025,
0035): every literal a rule needs — the anchors its search starts at, and for rules
anchored at common words the rarer words a match also needs — is registered here and
given one bit. One Aho–Corasick pass over the lower-cased text sets the bit of each
literal that occurs; two more bits record shapes that no literal describes (non-ASCII
characters, a run of 24 base64 characters). The result, ``ScanText.found``, is one
integer: a rule runs only when ``found`` has one of its bits, which costs a single
``&`` per rule. The gate is a necessary condition of a match, so it never changes a
verdict, only skips work that would find nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Generic, TypeVar

import ahocorasick_rs

ALNUM: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
WORD: Final = ALNUM | {"_"}
TOKEN: Final = WORD | {"-"}
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Kinds of anchors: "token" and "raw" anchors are case-sensitive and searched in the
# original text; "lowered" anchors are lower-case and searched in the
# lower-cased text. The prefilter looks for every anchor in lower case (an anchor in the
# text is also in the lower-cased text) and confirms a case-sensitive one in the original.
AnchorKind = str
_CASE_SENSITIVE: Final = frozenset({"token", "raw"})
_KINDS: Final = frozenset({"token", "lowered", "raw"})

# Shapes of the text, as bits of ``ScanText.found`` below the literals' bits.
NON_ASCII: Final = 1
LONG_RUN: Final = 2
_FIRST_LITERAL_BIT: Final = 2
# A run of this many base64 characters (see ``encoded``) sets ``LONG_RUN``.
MIN_RUN: Final = 24
_RUN_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# One byte per character, "a" for a base64 character and " " for anything else: runs are
# then found with ``bytes.find`` at C speed (every non-ASCII character is "?", no run).
RUN_MAP: Final = bytes(ord("a") if byte in _RUN_CHARS else ord(" ") for byte in range(256))
LONG_RUN_BYTES: Final = b"a" * MIN_RUN

_CHUNK: Final = 65_536
_FIRST: Final = itemgetter(0)
_FEW_HITS: Final = 32


@dataclass(frozen=True, eq=False)
class Anchors:
    """Registered literals of one kind, and the bits the prefilter sets for them.

    ``pairs``: each literal with its bit (the bit of its lower-case form); ``forms``: the
    lower-case forms; ``indices``: the forms' indices in the automaton.
    """

    literals: tuple[str, ...]
    kind: AnchorKind
    mask: int
    pairs: tuple[tuple[str, int], ...]
    forms: frozenset[str]
    indices: frozenset[int]  # the forms' indices in the automaton


class _Registry:
    """Every literal registered by the rules, and the automaton that finds them."""

    def __init__(self) -> None:
        # lower-cased literal -> its bit in ``ScanText.found``
        self.bits: dict[str, int] = {}
        self._patterns: list[str] = []  # the literals, by automaton index
        self._pattern_bits: list[int] = []
        self._automaton: ahocorasick_rs.AhoCorasick | None = None
        self._bytes_automaton: ahocorasick_rs.BytesAhoCorasick | None = None
        self._overlap = 0
        self._unregistered: dict[tuple[str, ...], Anchors] = {}

    def add(self, anchors: Iterable[str], kind: AnchorKind) -> Anchors:
        if kind not in _KINDS:
            raise ValueError(f"unknown anchor kind {kind!r}; use one of {sorted(_KINDS)}")
        literals = tuple(anchors)
        for anchor in literals:
            if not anchor:
                raise ValueError("an anchor must not be empty: it would match everywhere")
            if kind not in _CASE_SENSITIVE and anchor != anchor.lower():
                raise ValueError(f"{kind} anchor {anchor!r} must be lower-case")
            form = anchor.lower()
            if form not in self.bits:
                self.bits[form] = 1 << (len(self._patterns) + _FIRST_LITERAL_BIT)
                self._patterns.append(form)
                self._pattern_bits.append(self.bits[form])
                self._automaton = None  # rebuilt on next use
        return self._anchors(literals, kind)

    def _anchors(self, literals: tuple[str, ...], kind: AnchorKind) -> Anchors:
        pairs = tuple(dict.fromkeys((anchor, self.bits[anchor.lower()]) for anchor in literals))
        mask = 0
        for _, bit in pairs:
            mask |= bit
        forms = frozenset(anchor.lower() for anchor in literals)
        indices = frozenset(bit.bit_length() - 1 - _FIRST_LITERAL_BIT for _, bit in pairs)
        return Anchors(literals, kind, mask, pairs, forms, indices)

    def found(self, lowered: str) -> tuple[int, list[tuple[int, int, int]] | None]:
        """The bits of the registered literals that occur in ``lowered``, and every
        occurrence as (literal index, start, end), or ``None`` when they are not kept
        (a long text; and the prefilter tests force every gate open that way)."""
        if self._automaton is None or self._bytes_automaton is None:
            dfa = ahocorasick_rs.Implementation.DFA
            self._automaton = ahocorasick_rs.AhoCorasick(self._patterns, implementation=dfa)
            self._bytes_automaton = ahocorasick_rs.BytesAhoCorasick(
                [pattern.encode() for pattern in self._patterns], implementation=dfa
            )
            self._overlap = max(map(len, self._patterns)) - 1
        # ASCII text (``isascii`` is a flag test) is searched as bytes, at the same
        # offsets: about a third cheaper than a ``str``, whose offsets are converted.
        if lowered.isascii():
            bytes_search = self._bytes_automaton.find_matches_as_indexes
            bits, hits = _found(bytes_search, lowered.encode("ascii"), self._overlap)
        else:
            bits, hits = _found(self._automaton.find_matches_as_indexes, lowered, self._overlap)
        if hits is None or len(hits) > _FEW_HITS:
            return bits, hits
        # A few hits (most writes): a plain loop beats building a set.
        pattern_bits = self._pattern_bits
        for index, _, _ in hits:
            bits |= pattern_bits[index]
        return bits, hits

    def union(self, hits: _Hits) -> int:
        """The bits of the literals of ``hits``."""
        # Distinct powers of two: their sum is their union.
        return sum(map(self._pattern_bits.__getitem__, set(map(_FIRST, hits))))

    @staticmethod
    def positions(
        hits: list[tuple[int, int, int]] | None, lowered: str, anchors: Anchors
    ) -> list[int]:
        """Where any of ``anchors`` (lower-case) starts in ``lowered``, sorted, each
        position once: read off ``hits`` (from ``found``) when they are known, else
        searched for."""
        if hits is None:
            return anchor_positions(lowered, tuple(anchors.forms))
        indices = anchors.indices
        return sorted({start for index, start, _ in hits if index in indices})

    def lookup(self, anchors: tuple[str, ...]) -> tuple[Anchors, tuple[str, ...]]:
        """``anchors`` as registered (only those that are), and those never registered."""
        unknown = tuple(anchor for anchor in anchors if anchor.lower() not in self.bits)
        known = self._unregistered.get(anchors)
        if known is None:
            registered = tuple(anchor for anchor in anchors if anchor not in unknown)
            known = self._unregistered[anchors] = self._anchors(registered, "raw")
        return known, unknown


_Hits = list[tuple[int, int, int]]


def _found(
    # ``AhoCorasick`` or ``BytesAhoCorasick``'s search, with a haystack of its own type.
    search: Callable[[Any, bool], _Hits],
    haystack: str | bytes,
    overlap: int,
) -> tuple[int, _Hits | None]:
    """Every occurrence of every literal (overlapping: not only the leftmost ones), and
    their bits when there are many (else 0: the caller or-s a few in a loop)."""
    if len(haystack) <= _CHUNK:
        hits = search(haystack, True)
        return (_REGISTRY.union(hits) if len(hits) > _FEW_HITS else 0), hits
    # A long text in overlapping chunks (a literal across a boundary lies whole in the
    # next chunk): the list of hits per call stays small, and a text screened in a worker
    # thread lets the event loop run between chunks. Only the bits are kept: the
    # positions of every literal in a large text would be a large list; a rule that
    # wants positions searches for them (``positions``).
    bits = 0
    for start in range(0, len(haystack), _CHUNK):
        bits |= _REGISTRY.union(search(haystack[start : start + _CHUNK + overlap], True))
    return bits, None


_REGISTRY: Final = _Registry()


def register_anchors(anchors: tuple[str, ...], kind: AnchorKind) -> Anchors:
    """Record ``anchors`` of ``kind`` (see above) for the prefilter."""
    return _REGISTRY.add(anchors, kind)


def register_words(*groups: tuple[str, ...]) -> tuple[Anchors, ...]:
    """Record groups of lower-case literals for ``ScanText.has_each``."""
    return tuple(_REGISTRY.add(group, "lowered") for group in groups)


def run_map(text: str) -> bytes:
    """``text`` as one byte per character, ``a`` for a base64 character, else a space."""
    return text.encode("ascii", "replace").translate(RUN_MAP)


class ScanText:
    """A text, its lower-cased copy (same offsets) and the prefilter's ``found`` bits."""

    __slots__ = ("_hits", "_runs", "found", "lowered", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters (e.g. "İ") lower-case to two code points; keep offsets aligned.
            lowered = text.translate(_ASCII_LOWER)
        self.lowered = lowered
        runs = text.encode("ascii", "replace").translate(RUN_MAP)  # ``run_map``, inlined
        self._runs = runs
        found, self._hits = _REGISTRY.found(lowered)
        if not text.isascii():
            found |= NON_ASCII
        if LONG_RUN_BYTES in runs:
            found |= LONG_RUN
        self.found = found

    def positions(self, anchors: Anchors) -> list[int]:
        """Where any of ``anchors`` (registered lower-case literals) starts in the
        lower-cased text, sorted, each position once (``anchor_positions``)."""
        if not self.found & anchors.mask:
            return []
        return _REGISTRY.positions(self._hits, self.lowered, anchors)

    @property
    def runs(self) -> bytes:
        """The text mapped by ``RUN_MAP``."""
        return self._runs

    def has_any(self, anchors: Anchors) -> bool:
        """Whether any of ``anchors`` occurs (a case-sensitive one as written)."""
        found = self.found
        if not found & anchors.mask:
            return False
        if anchors.kind not in _CASE_SENSITIVE:
            return True
        text = self.text
        return any(found & bit and anchor in text for anchor, bit in anchors.pairs)

    def has_each(self, groups: tuple[Anchors, ...]) -> bool:
        """Whether every group (registered with ``register_words``) has a literal in the
        lower-cased text."""
        found = self.found
        return all(found & group.mask for group in groups)

    def present(self, anchors: Anchors) -> tuple[str, ...]:
        """Those of ``anchors`` the prefilter found (to be searched for)."""
        found = self.found
        if not found & anchors.mask:
            return ()
        # Read off the bits: no set of the text's literals is built for this.
        return tuple([anchor for anchor, bit in anchors.pairs if found & bit])

    def may_occur(self, anchors: tuple[str, ...]) -> tuple[str, ...]:
        """Those of ``anchors`` the prefilter found, and any it was never told about: an
        unregistered anchor is searched for, never skipped."""
        registered, unknown = _REGISTRY.lookup(anchors)
        found = self.present(registered)
        return found + unknown if unknown else found

    def matches(
        self,
        pattern: re.Pattern[str],
        anchors: Anchors | tuple[str, ...],
        *,
        lowered: bool,
        skip_run: re.Pattern[str] | None = None,
    ) -> Iterator[re.Match[str]]:
        """``find_matches`` in the lower-cased (or original) text, from the registered
        ``anchors`` that occur only; a plain tuple of anchors (a rule gated by other
        literals) is searched for whole."""
        present = self.present(anchors) if isinstance(anchors, Anchors) else anchors
        if not present:
            return iter(())
        return find_matches(pattern, self.lowered if lowered else self.text, present, skip_run)

    def preceded_by(self, index: int, chars: frozenset[str]) -> bool:
        """True when the character before ``index`` is one of ``chars``."""
        return index > 0 and self.text[index - 1] in chars

    def starts_line(self, index: int, indent: str = " \t>") -> bool:
        """True when only ``indent`` characters stand between a line start and ``index``."""
        line_start = self.text.rfind("\n", 0, index) + 1
        return all(char in indent for char in self.text[line_start:index])


def anchor_positions(haystack: str, anchors: tuple[str, ...]) -> list[int]:
    """Where any of ``anchors`` starts in ``haystack``, sorted, each position once."""
    positions: set[int] = set()
    for anchor in anchors:
        position = haystack.find(anchor)
        while position != -1:
            positions.add(position)
            position = haystack.find(anchor, position + 1)
    return sorted(positions)


def find_matches(
    pattern: re.Pattern[str],
    haystack: str,
    anchors: tuple[str, ...],
    skip_run: re.Pattern[str] | None = None,
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of ``pattern``, which must start with one of the literal
    ``anchors``, in text order (see ``matches_at``)."""
    return matches_at(pattern, haystack, anchor_positions(haystack, anchors), skip_run)


def matches_at(
    pattern: re.Pattern[str],
    haystack: str,
    positions: list[int],
    skip_run: re.Pattern[str] | None = None,
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of ``pattern`` starting at ``positions`` (sorted), in order.

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
    end = -1
    for position in positions:
        if position < end:
            continue
        match = pattern.match(haystack, position)
        if match:
            end = match.end()
            yield match
        elif skip_run is not None:
            run = skip_run.match(haystack, position)
            end = run.end() if run else end


Rule = TypeVar("Rule")


class RuleIndex(Generic[Rule]):
    """Rules with the bits that gate them, so a text is offered only the rules one of
    whose literals it holds (in their original order) instead of asking every rule."""

    def __init__(self, rules: Sequence[Rule], gate: Callable[[Rule], Anchors]) -> None:
        union = 0
        by_bit: dict[int, list[int]] = {}
        for index, rule in enumerate(rules):
            mask = gate(rule).mask
            if not mask:
                raise ValueError(f"{rule!r} has no literal to be found by; it would never run")
            union |= mask
            while mask:
                bit = mask & -mask
                by_bit.setdefault(bit, []).append(index)
                mask ^= bit
        self._rules = tuple(rules)
        # Each bit with the rules it gates (in order): a text holds few of the literals,
        # so its candidates come from its few bits instead of a test of every rule.
        self._by_bit = {bit: tuple(indices) for bit, indices in by_bit.items()}
        self._single = {
            bit: tuple(self._rules[i] for i in indices) for bit, indices in by_bit.items()
        }
        # Every rule's bits: a text with none of them is offered no rule.
        self.gate = union

    def candidates(self, scan: ScanText) -> Sequence[Rule]:
        """The rules one of whose literals occurs in ``scan`` (lower-cased), in order."""
        found = scan.found & self.gate
        if not found:
            return ()
        if not found & (found - 1):  # one bit (the usual case)
            return self._single[found]
        indices: set[int] = set()
        by_bit = self._by_bit
        while found:
            bit = found & -found
            indices.update(by_bit[bit])
            found ^= bit
        rules = self._rules
        return [rules[index] for index in sorted(indices)]
