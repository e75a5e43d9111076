"""Deterministic CI failure triage (pure: no I/O).

Before any agent sees a red pipeline, crewline fingerprints the failure: which jobs failed,
which tests (from the JUnit test report) and the normalised error lines of the job logs.
Two failures with the same tests or the same error lines are the same failure, whatever
the timestamps, addresses, durations or temporary paths in their logs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from forge.ci_types import TestReport

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VOLATILE = (
    # A sha has a letter and a digit: a bare number of any length is left to the number rules
    # (a time.time() of 16 digits and one of 13 must read alike).
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"), "<sha>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"(/tmp|/var/folders|/private/var)/\S*"), "<tmp>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+Z?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?(s|ms|sec|seconds)\b"), "<duration>"),
    (re.compile(r"\bline \d+\b"), "line <n>"),
    (re.compile(r"\b\d+\b"), "<n>"),
)
_ERROR_LINE = re.compile(
    r"(error|exception|failed|failure|assert|traceback|fatal|panic)", re.IGNORECASE
)
EXCERPT_LINES = 40


def normalise(line: str) -> str:
    text = _ANSI.sub("", line).strip()
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def error_lines(trace: str, limit: int = 20) -> list[str]:
    """The normalised lines of a log that say what went wrong, last ``limit`` of them."""
    found = [normalise(line) for line in trace.splitlines() if _ERROR_LINE.search(line)]
    return list(dict.fromkeys(found))[-limit:]


def excerpt(trace: str, lines: int = EXCERPT_LINES) -> str:
    """The end of a job log, where the failure usually is, without colour codes."""
    tail = [_ANSI.sub("", line) for line in trace.splitlines()[-lines:]]
    return "\n".join(tail)


@dataclass(frozen=True)
class Fingerprint:
    jobs: tuple[str, ...]
    tests: tuple[str, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def digest(self) -> str:
        text = "\n".join(["jobs", *self.jobs, "tests", *self.tests, "errors", *self.errors])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def shares_with(self, other: Fingerprint) -> bool:
        """The same failure: a failed test in common, or (with no test names on either
        side) a failed job in common with the same error lines."""
        if self.tests and other.tests:
            return bool(set(self.tests) & set(other.tests))
        return bool(set(self.jobs) & set(other.jobs)) and bool(set(self.errors) & set(other.errors))

    @property
    def empty(self) -> bool:
        """No failed job and no failed test: the pipeline failed before any job could (an
        invalid configuration), so there is nothing a developer could be shown."""
        return not self.jobs and not self.tests

    def describe(self) -> str:
        if self.empty:
            return "no job failed"
        parts = [f"failed jobs: {', '.join(self.jobs)}"]
        if self.tests:
            parts.append(f"failed tests: {', '.join(self.tests)}")
        return "; ".join(parts)


def fingerprint(
    failed_jobs: Iterable[str], report: TestReport, traces: Iterable[str]
) -> Fingerprint:
    errors: list[str] = []
    for trace in traces:
        errors += error_lines(trace)
    return Fingerprint(
        jobs=tuple(sorted(set(failed_jobs))),
        tests=tuple(report.failed_tests()),
        errors=tuple(sorted(set(errors))),
    )


def known_flaky(fp: Fingerprint, flaky_tests: Iterable[str]) -> bool:
    """Every failed test is one already recorded as flaky (and at least one failed)."""
    known = set(flaky_tests)
    return bool(fp.tests) and set(fp.tests) <= known
