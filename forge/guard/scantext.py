"""The text being screened, prepared once for every rule.

Speed matters (every write is screened), and Python's regex engine is slow on
case-insensitive alternations and on patterns that open with a look-behind: both
defeat its literal-prefix search. So case-insensitive rules match lower-case
patterns against a lower-cased copy with identical offsets, and word boundaries on
the left are checked here in Python instead of with a look-behind.

Most writes trigger no rule at all, so the first step is a prefilter (decision 0025):
every literal a rule needs — the anchors its search starts at, and for rules anchored
at common words the rarer words a match also needs — is registered here, and one
Aho–Corasick pass over the lower-cased text finds which of them occur. A rule runs only
when its literals are present; the gate is a necessary condition of a match, so it
never changes a verdict, only skips work that would find nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import ahocorasick_rs

ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
WORD = ALNUM | {"_"}
TOKEN = WORD | {"-"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Kinds of anchors: "token" and "raw" anchors are case-sensitive and searched in the
# original text; "lowered" anchors are lower-case and searched in the
# lower-cased text. The prefilter looks for every anchor in lower case (an anchor in the
# text is also in the lower-cased text) and confirms a case-sensitive one in the original.
AnchorKind = str
_CASE_SENSITIVE = frozenset({"token", "raw"})
_KINDS = frozenset({"token", "lowered", "raw"})


_CHUNK = 65_536


# Per anchor tuple: the lower-case forms, each anchor with the form the automaton reports
# it by ("" when never registered), and whether every anchor is registered.
_Plan = tuple[frozenset[str], tuple[tuple[str, str], ...], bool]


class _Registry:
    """Every literal registered by the rules, and the automaton that finds them."""

    def __init__(self) -> None:
        self.lowered: set[str] = set()
        # lower-cased literal -> the case-sensitive anchors that lower to it
        self.exact: dict[str, set[str]] = {}
        self._automaton: ahocorasick_rs.AhoCorasick | None = None
        self._patterns: list[str] = []
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def add(self, anchors: Iterable[str], kind: AnchorKind) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown anchor kind {kind!r}; use one of {sorted(_KINDS)}")
        for anchor in anchors:
            if not anchor:
                raise ValueError("an anchor must not be empty: it would match everywhere")
            if kind in _CASE_SENSITIVE:
                self.exact.setdefault(anchor.lower(), set()).add(anchor)
            elif anchor != anchor.lower():
                raise ValueError(f"{kind} anchor {anchor!r} must be lower-case")
            if anchor.lower() not in self.lowered:
                self.lowered.add(anchor.lower())
                self._automaton = None  # rebuilt on next use
                self._plans.clear()

    def lookup(self, anchors: tuple[str, ...]) -> _Plan:
        """``anchors`` in lower case, and each anchor with the lower-case form the
        automaton reports it by ("" for an anchor never registered). Cached: rules ask
        with the same tuples every time."""
        plan = self._plans.get(anchors)
        if plan is None:
            forms = tuple(anchor.lower() for anchor in anchors)
            pairs = tuple(
                (anchor, form if form in self.lowered else "")
                for anchor, form in zip(anchors, forms, strict=True)
            )
            known = all(form for _, form in pairs)
            plan = self._plans[anchors] = (frozenset(forms), pairs, known)
        return plan

    def found(self, lowered: str) -> frozenset[str]:
        """The registered literals (lower-cased) that occur in ``lowered``."""
        if self._automaton is None:
            self._patterns = sorted(self.lowered)
            self._automaton = ahocorasick_rs.AhoCorasick(
                self._patterns, implementation=ahocorasick_rs.Implementation.DFA
            )
        patterns = self._patterns
        if len(lowered) <= _CHUNK:
            # Overlapping: every occurrence of every literal, not only the leftmost ones.
            hits = self._automaton.find_matches_as_indexes(lowered, overlapping=True)
            return frozenset([patterns[index] for index, _, _ in hits])
        # A long text in overlapping chunks (a literal across a boundary lies whole in the
        # next chunk): the list of hits stays small, and a text screened in a worker thread
        # lets the event loop run between chunks.
        overlap = max(map(len, patterns)) - 1
        found: set[str] = set()
        for start in range(0, len(lowered), _CHUNK):
            chunk = lowered[start : start + _CHUNK + overlap]
            hits = self._automaton.find_matches_as_indexes(chunk, overlapping=True)
            found.update(patterns[index] for index, _, _ in hits)
        return frozenset(found)


_REGISTRY = _Registry()


def register_anchors(anchors: tuple[str, ...], kind: AnchorKind) -> frozenset[str]:
    """Record ``anchors`` of ``kind`` (see above) for the prefilter; returns them as a set."""
    _REGISTRY.add(anchors, kind)
    return frozenset(anchors)


def register_words(*groups: tuple[str, ...]) -> tuple[frozenset[str], ...]:
    """Record groups of lower-case literals for ``ScanText.has_each``."""
    for group in groups:
        _REGISTRY.add(group, "lowered")
    return tuple(frozenset(group) for group in groups)


@dataclass(frozen=True)
class ScanText:
    text: str
    lowered: str = field(init=False)
    # Every registered literal (lower-cased) that occurs in the lower-cased text.
    found: frozenset[str] = field(init=False, repr=False, compare=False)
    _exact: list[frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lowered = self.text.lower()
        if len(lowered) != len(self.text):
            # A few characters (e.g. "İ") lower-case to two code points; keep offsets aligned.
            lowered = self.text.translate(_ASCII_LOWER)
        object.__setattr__(self, "lowered", lowered)
        object.__setattr__(self, "found", _REGISTRY.found(lowered))
        object.__setattr__(self, "_exact", [])

    def has_any(self, anchors: frozenset[str], kind: AnchorKind) -> bool:
        """Whether any of ``anchors`` (registered with ``register_anchors``) occurs."""
        if kind in _CASE_SENSITIVE:
            return not anchors.isdisjoint(self._found_exact())
        return not anchors.isdisjoint(self.found)

    def has_each(self, groups: tuple[frozenset[str], ...]) -> bool:
        """Whether every group (registered with ``register_words``) has a literal in the
        lower-cased text."""
        found = self.found
        return all(not group.isdisjoint(found) for group in groups)

    def may_occur(self, anchors: tuple[str, ...]) -> tuple[str, ...]:
        """Those of ``anchors`` the prefilter found (in lower case), and any it was never
        told about: an unregistered anchor is searched for, never skipped."""
        found = self.found
        forms, pairs, all_known = _REGISTRY.lookup(anchors)
        if all_known and found.isdisjoint(forms):
            return ()
        return tuple(anchor for anchor, form in pairs if not form or form in found)

    def matches(
        self,
        pattern: re.Pattern[str],
        anchors: tuple[str, ...],
        *,
        lowered: bool,
        skip_run: re.Pattern[str] | None = None,
    ) -> Iterator[re.Match[str]]:
        """``find_matches`` in the lower-cased (or original) text, from the anchors that
        occur only."""
        present = self.may_occur(anchors)
        if not present:
            return iter(())
        return find_matches(pattern, self.lowered if lowered else self.text, present, skip_run)

    def _found_exact(self) -> frozenset[str]:
        """The case-sensitive anchors that occur in the original text."""
        if not self._exact:
            self._exact.append(
                frozenset(
                    [
                        anchor
                        for literal in self.found
                        for anchor in _REGISTRY.exact.get(literal, ())
                        if anchor in self.text
                    ]
                )
            )
        return self._exact[0]

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


Rule = TypeVar("Rule")


class RuleIndex(Generic[Rule]):
    """Rules by the literals that gate them, so a text is offered only the rules one of
    whose literals it holds (in their original order) instead of asking every rule."""

    def __init__(self, rules: Sequence[Rule], literals: Callable[[Rule], Iterable[str]]) -> None:
        self._rules = tuple(rules)
        self._by_literal: dict[str, list[int]] = {}
        for index, rule in enumerate(self._rules):
            anchors = list(literals(rule))
            if not anchors:
                raise ValueError(f"{rule!r} has no literal to be found by; it would never run")
            for literal in anchors:
                self._by_literal.setdefault(literal.lower(), []).append(index)

    def candidates(self, scan: ScanText) -> list[Rule]:
        """The rules one of whose literals occurs in ``scan`` (lower-cased), in order."""
        by_literal = self._by_literal
        indices = {i for literal in scan.found for i in by_literal.get(literal, ())}
        return [self._rules[index] for index in sorted(indices)]
