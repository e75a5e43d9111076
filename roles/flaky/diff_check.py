"""What a flaky-test fix must not do, checked on its diff before review (pure).

A fix removes the cause. Retrying the test, skipping it, quarantining it, loosening its
assertion or raising a timeout makes the symptom go away and the cause stay, and a reviewer
tired of a red pipeline may wave it through; so the diff is checked deterministically first.
A raised timeout passes only when the diagnosis named resources or timeouts as the cause.

The check reads a unified diff (``git diff``): the lines it adds, and for loosening, the
lines it removes. It errs on the side of refusing: a refused fix goes back to the developer
with the lines quoted, and a human can still overrule it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TIMEOUT_CLASS = "resource-or-timeout"

_ADDED_RULES = (
    (
        "retry",
        re.compile(
            r"(pytest\.mark\.flaky|@flaky\b|\bflaky\s*\(|--reruns|reruns\s*=|\bretry\s*:|"
            r"@retry\b|\bretrying\b|tenacity|max_retries\s*=|for\s+_?attempt\s+in\s+range)",
            re.I,
        ),
        "retries the test instead of removing its cause",
    ),
    (
        "skip",
        re.compile(
            r"(pytest\.mark\.skip|pytest\.skip\s*\(|unittest\.skip|@skip\w*|\.skipTest\s*\(|"
            r"pytest\.mark\.xfail|expectedFailure|allow_failure\s*:\s*true|\bt\.Skip\(|"
            r"\bit\.skip\(|\bdescribe\.skip\(|\bxit\(|@Disabled\b|@Ignore\b)",
            re.I,
        ),
        "skips the test or lets it fail",
    ),
    (
        "quarantine",
        re.compile(r"quarantin", re.I),
        "quarantines the test",
    ),
)
_QUARANTINE = re.compile(r"quarantin", re.I)
_TIMEOUT = re.compile(
    r"(timeout|deadline|wait_for|sleep)\w*\s*[=:(]?\s*[^0-9\n]*?(\d+(?:\.\d+)?)", re.I
)
_ASSERT = re.compile(r"\b(assert\w*|expect|should)\b", re.I)
_LOOSE = re.compile(
    r"(assertTrue\s*\(\s*True|assert\s+True\b|\babs\s*=|\brel\s*=|\bdelta\s*=|\bplaces\s*=|"
    r"approx\s*\(|assertAlmostEqual|\bassertIn\b|\s+in\s+|>=|<=|\bor\b|\bany\s*\(|"
    r"assertIsNotNone|is\s+not\s+None)",
    re.I,
)


@dataclass(frozen=True)
class Violation:
    rule: str  # retry | skip | quarantine | loosened-assertion | raised-timeout
    file: str
    line: str
    why: str

    def text(self) -> str:
        return f"{self.file}: {self.why}: `{self.line.strip()[:160]}`"


def check_fix(diff: str, *, cause: str = "") -> list[Violation]:
    """Every way the diff treats the symptom instead of the cause; empty means it may go to
    review. ``cause`` is the diagnosis's class (a raised timeout is allowed for
    ``resource-or-timeout`` only)."""
    found: list[Violation] = []
    for path, added, removed in _files(diff):
        if added and _QUARANTINE.search(path):
            found.append(Violation("quarantine", path, added[0], "adds to a quarantine list"))
        for line in added:
            for rule, pattern, why in _ADDED_RULES:
                if pattern.search(line):
                    found.append(Violation(rule, path, line, why))
                    break
        found.extend(_loosened(path, added, removed))
        if cause != TIMEOUT_CLASS:
            found.extend(_raised_timeouts(path, added, removed))
    return found


def _files(diff: str) -> list[tuple[str, list[str], list[str]]]:
    files: list[tuple[str, list[str], list[str]]] = []
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[4:].strip()
            files.append((path.removeprefix("b/"), [], []))
        elif line.startswith("--- ") or not files:
            continue
        elif line.startswith("+"):
            files[-1][1].append(line[1:])
        elif line.startswith("-"):
            files[-1][2].append(line[1:])
    return files


def _loosened(path: str, added: list[str], removed: list[str]) -> list[Violation]:
    """An assertion removed, or replaced by a looser one (tolerance, membership, or-else)."""
    gone = [line for line in removed if _ASSERT.search(line)]
    new = [line for line in added if _ASSERT.search(line)]
    found = []
    if len(new) < len(gone):
        for line in gone[len(new) :]:
            found.append(Violation("loosened-assertion", path, line, "removes an assertion"))
    for line in new:
        if _LOOSE.search(line) and not any(_LOOSE.search(old) for old in gone) and gone:
            found.append(
                Violation("loosened-assertion", path, line, "replaces an assertion by a looser one")
            )
    return found


def _raised_timeouts(path: str, added: list[str], removed: list[str]) -> list[Violation]:
    before = [float(m.group(2)) for line in removed if (m := _TIMEOUT.search(line))]
    found = []
    for line in added:
        match = _TIMEOUT.search(line)
        if match and before and float(match.group(2)) > max(before):
            found.append(
                Violation(
                    "raised-timeout",
                    path,
                    line,
                    "raises a timeout though the diagnosis did not name resources or time",
                )
            )
    return found
