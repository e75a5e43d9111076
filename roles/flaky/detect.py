"""Flaky-test candidates from CI history (pure: no I/O).

A verdict is one test's outcome in one job run: which commit, which pipeline, which job
(a retried job and its retry are two runs), passed or failed, and the failure text. A test
is a candidate when its verdicts on one commit include both a pass and a failure: the code
did not change, the outcome did. That covers a failure that a retry of its job turned green
inside one pipeline and one that only differs between two pipelines of the same commit (a
merge request's pipeline and the default branch's, or a pipeline run again on a sha). A
test that fails on every run of a commit is a real failure, never a candidate. QA's excused
tests (it saw them fail then pass on a retry) are candidates too.

A candidate's fingerprint is its test id and the normalised last line of its failure, so the same
test failing the same way reads alike whatever the timestamps, addresses or temporary paths.
The detector raises its bar for a test that was not reproduced: such a test needs more
commits with mixed verdicts before it is filed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from forge.ci_types import TestCase
from roles.triage import normalise

EXCERPT_CHARS = 600  # of one failure, kept as evidence on the issue
KEPT = 10  # shas, pipelines and jobs kept as evidence per test


@dataclass(frozen=True)
class Verdict:
    test: str  # ``classname.name``
    sha: str
    pipeline: int
    job: int
    passed: bool
    at: str  # when the job finished (ISO 8601)
    failure: str = ""  # the failure's text, for a failed verdict
    job_name: str = ""


@dataclass
class Candidate:
    test: str
    fingerprint: str
    mixed_shas: list[str] = field(default_factory=list)  # commits with a pass and a failure
    pipelines: list[int] = field(default_factory=list)
    failed_jobs: list[int] = field(default_factory=list)
    excerpt: str = ""
    first_seen: str = ""
    last_seen: str = ""
    runs: int = 0
    failures: int = 0
    excused: bool = False  # QA excused it (its own retry turned it green)
    # Where the reproducer re-runs it: the pipeline and job name of its last failure.
    rerun_pipeline: int = 0
    rerun_job: str = ""

    @property
    def digest(self) -> str:
        return flake_key(self.test)


def flake_key(test: str) -> str:
    """The hidden key of a test's issue: the same on every host."""
    return hashlib.sha256(test.encode()).hexdigest()[:16]


def fingerprint(test: str, failure: str) -> str:
    # The last line of a traceback says what went wrong; the first only that one did.
    last = next((line for line in reversed(failure.splitlines()) if line.strip()), "")
    return hashlib.sha256(f"{test}\n{normalise(last)}".encode()).hexdigest()[:16]


def verdicts_of(
    cases: Iterable[TestCase],
    *,
    sha: str,
    pipeline: int,
    job: int,
    at: str,
    job_name: str = "",
) -> list[Verdict]:
    """One job's JUnit cases as verdicts; skipped cases say nothing either way."""
    found = []
    for case in cases:
        if case.status not in ("success", "failed", "error"):
            continue
        passed = case.status == "success"
        failure = "" if passed else case.system_output
        found.append(Verdict(case.full_name, sha, pipeline, job, passed, at, failure, job_name))
    return found


def candidates(
    verdicts: Iterable[Verdict],
    *,
    excused: Iterable[str] = (),
    bars: Mapping[str, int] | None = None,
) -> list[Candidate]:
    """The flaky candidates among ``verdicts``, by test id. ``bars`` is the number of commits
    with mixed verdicts a test needs (1 unless it was not reproduced before)."""
    by_test: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_test.setdefault(verdict.test, []).append(verdict)
    bars = bars or {}
    excused_set = set(excused)
    found = []
    for test in sorted(by_test.keys() | excused_set):
        runs = sorted(by_test.get(test, []), key=lambda v: (v.at, v.job))
        mixed = _mixed_shas(runs)
        is_excused = test in excused_set
        needed = bars.get(test, 1)
        if len(mixed) < needed and not (is_excused and needed <= 1):
            continue
        failed = [v for v in runs if not v.passed]
        if not failed and not is_excused:
            continue
        failure = failed[-1].failure if failed else ""
        evidence = [v for v in runs if v.sha in mixed] or runs
        found.append(
            Candidate(
                test=test,
                fingerprint=fingerprint(test, failure),
                mixed_shas=mixed[-KEPT:],
                pipelines=_distinct(v.pipeline for v in evidence)[-KEPT:],
                failed_jobs=_distinct(v.job for v in failed)[-KEPT:],
                excerpt=failure[-EXCERPT_CHARS:],  # the end, where the message is
                first_seen=runs[0].at if runs else "",
                last_seen=runs[-1].at if runs else "",
                runs=len(runs),
                failures=len(failed),
                excused=is_excused,
                rerun_pipeline=failed[-1].pipeline if failed else 0,
                rerun_job=failed[-1].job_name if failed else "",
            )
        )
    return found


def _mixed_shas(runs: list[Verdict]) -> list[str]:
    outcomes: dict[str, set[bool]] = {}
    for verdict in runs:
        outcomes.setdefault(verdict.sha, set()).add(verdict.passed)
    return [sha for sha, seen in outcomes.items() if seen == {True, False}]


def _distinct(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))
