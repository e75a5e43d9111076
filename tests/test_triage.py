"""Deterministic CI failure triage: normalised log lines, failed tests from GitLab's test
report, fingerprints that survive volatile details, shared failures and known flakes.
Real unittest runs in different directories provide logs that differ the way two CI runs
of one failure differ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forge.ci_types import TestReport
from roles.triage import (
    Fingerprint,
    error_lines,
    excerpt,
    fingerprint,
    known_flaky,
    normalise,
)

CLOCK_TEST = """import time
import unittest


class TickTest(unittest.TestCase):
    def test_tick(self) -> None:
        started = time.time()
        self.assertEqual(round(started) % 1, {expected}, f"tick at {{started}} ({{object()}})")

    def test_fine(self) -> None:
        self.assertTrue(True)
"""


def unittest_log(base: Path, expected: int = 1) -> str:
    """The output of a real unittest run with one failing test, run from ``base``."""
    tests = base / "tests"
    tests.mkdir(parents=True)
    (tests / "__init__.py").write_text("")
    (tests / "test_clock.py").write_text(CLOCK_TEST.format(expected=expected))
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "tests.test_clock"],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    return f"$ python3 -m unittest\n{done.stderr}ERROR: Job failed: exit code 1\n"


NO_REPORT = TestReport.of({})


def report(*cases: tuple[str, str, str], suite: str = "unittest") -> TestReport:
    """A GitLab pipeline test report with ``(classname, name, status)`` cases."""
    return TestReport.of(
        {
            "test_suites": [
                {
                    "name": suite,
                    "test_cases": [
                        {"classname": classname, "name": name, "status": status}
                        for classname, name, status in cases
                    ],
                }
            ]
        }
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("commit 3f2a9c1d merged", "commit 9b8e7d6c merged"),
        ("tick at 1764690000.123456 late", "tick at 1764690012.5 late"),
        ("pid 1234567 exited", "pid 42 exited"),
        ("at 0x7f3a2b1c4d50", "at 0x7f99aa00bb11"),
        ("open /tmp/build-123/src/app.py", "open /tmp/build-987/src/app.py"),
        ("2024-05-01T10:11:12.345Z job started", "2025-12-31 23:59:59 job started"),
        ("Ran 3 tests in 0.012s", "Ran 3 tests in 1.5s"),
        ('File "x.py", line 12, in f', 'File "x.py", line 481, in f'),
        ("\x1b[31;1mERROR\x1b[0m: exit 1", "ERROR: exit 2"),
    ],
)
def test_volatile_details_normalise_away(one: str, other: str) -> None:
    assert one != other and normalise(one) == normalise(other)


def test_what_differs_in_substance_stays_different() -> None:
    assert normalise("KeyError: 'user'") != normalise("KeyError: 'group'")
    assert normalise("  AssertionError: x  ") == "AssertionError: x"


def test_error_lines_are_the_lines_that_say_what_went_wrong_once_each_last_ones_kept() -> None:
    trace = "\n".join(
        [
            "$ python3 ci/junit.py",
            "test_a (tests.T.test_a) ... ok",
            "AssertionError: 1 != 2",
            "AssertionError: 3 != 4",  # the same line once normalised
            "Traceback (most recent call last):",
            "ERROR: Job failed: exit code 1",
        ]
    )
    assert error_lines(trace) == [
        "AssertionError: <n> != <n>",
        "Traceback (most recent call last):",
        "ERROR: Job failed: exit code <n>",
    ]
    assert error_lines(trace, limit=1) == ["ERROR: Job failed: exit code <n>"]
    assert error_lines("all good\nJob succeeded\n") == []


def test_the_excerpt_is_the_end_of_the_log_without_colour_codes() -> None:
    trace = "\n".join(f"\x1b[32mline {n}\x1b[0m" for n in range(100))
    assert excerpt(trace, lines=3) == "line 97\nline 98\nline 99"
    assert len(excerpt(trace).splitlines()) == 40


def test_failed_tests_come_from_the_report_failed_and_errored_sorted_once() -> None:
    failing = report(
        ("tests.test_b.B", "test_two", "failed"),
        ("tests.test_a.A", "test_one", "error"),
        ("tests.test_a.A", "test_ok", "success"),
        ("tests.test_a.A", "test_skip", "skipped"),
        ("tests.test_b.B", "test_two", "failed"),
        ("", "smoke", "failed"),  # no class: the suite names it
    )
    assert failing.failed_tests() == [
        "tests.test_a.A.test_one",
        "tests.test_b.B.test_two",
        "unittest.smoke",
    ]
    assert NO_REPORT.failed_tests() == [] == TestReport.of({"test_suites": None}).failed_tests()


def test_one_failure_in_two_runs_has_one_fingerprint(tmp_path: Path) -> None:
    first = unittest_log(tmp_path / "run-1" / "builds" / "a1b2c3d4e5")
    second = unittest_log(tmp_path / "run-2" / "elsewhere")
    assert first != second  # paths, timings, times and addresses differ
    failed = report(("tests.test_clock.TickTest", "test_tick", "failed"))
    one = fingerprint(["test"], failed, [first])
    other = fingerprint(["test"], failed, [second])
    assert one == other and one.digest == other.digest
    assert any("AssertionError" in line for line in one.errors)
    # Without a report the logs alone still say it is the same failure.
    alone = fingerprint(["test"], NO_REPORT, [first])
    assert alone.digest == fingerprint(["test"], NO_REPORT, [second]).digest


def test_a_different_failure_has_a_different_fingerprint(tmp_path: Path) -> None:
    tick = report(("tests.test_clock.TickTest", "test_tick", "failed"))
    one = fingerprint(["test"], tick, [unittest_log(tmp_path / "a")])
    other_test = report(("tests.test_clock.TickTest", "test_fine", "failed"))
    assert fingerprint(["test"], other_test, [unittest_log(tmp_path / "b")]).digest != one.digest
    assert fingerprint(["lint"], tick, [unittest_log(tmp_path / "c")]).digest != one.digest


def test_shares_with_a_common_failed_test_or_same_job_and_error_lines() -> None:
    ours = Fingerprint(("test",), ("t.A.test_x", "t.A.test_y"), ("AssertionError: <n>",))
    assert ours.shares_with(Fingerprint(("unit",), ("t.A.test_y",)))
    assert not ours.shares_with(Fingerprint(("test",), ("t.B.test_z",), ours.errors))
    # With test names missing on a side, the job and an error line must both match.
    bare = Fingerprint(("test",), (), ("ModuleNotFoundError: No module named 'x'",))
    assert bare.shares_with(Fingerprint(("test", "lint"), (), bare.errors))
    assert not bare.shares_with(Fingerprint(("lint",), (), bare.errors))
    assert not bare.shares_with(Fingerprint(("test",), (), ("ImportError: y",)))
    assert not bare.shares_with(ours)  # no test names on one side, different errors


def test_known_flaky_only_when_every_failed_test_is_a_known_flake() -> None:
    flaky = ["t.A.test_tick", "t.B.test_net"]
    assert known_flaky(Fingerprint(("test",), ("t.A.test_tick",)), flaky)
    assert known_flaky(Fingerprint(("test",), ("t.A.test_tick", "t.B.test_net")), flaky)
    assert not known_flaky(Fingerprint(("test",), ("t.A.test_tick", "t.C.new")), flaky)
    assert not known_flaky(Fingerprint(("test",), (), ("ERROR: x",)), flaky)
    assert not known_flaky(Fingerprint(("test",), ("t.A.test_tick",)), [])


def test_describe_names_the_jobs_and_the_tests() -> None:
    assert Fingerprint(("lint", "test"), ("t.A.test_x",)).describe() == (
        "failed jobs: lint, test; failed tests: t.A.test_x"
    )
    assert Fingerprint((), ()).describe() == "no job failed"
    assert Fingerprint((), ()).empty and not Fingerprint(("lint",), ()).empty
