"""The flaky detector on a synthetic CI history: precision, recall, and CI runs per flake.

Run: ``.venv/bin/python bench/flaky.py [--tests 600] [--flaky 40] [--commits 120] [--seed 7]``

The history: ``--tests`` tests, of which ``--flaky`` fail at random with a rate drawn from
1% to 50% (log-uniform, so rare flakes are as common as frequent ones), a few are broken
for good on a stretch of commits (a real regression, later fixed), the rest always pass.
Each of ``--commits`` commits gets a push pipeline; a third also get a merge request
pipeline on the same sha, and a red test job is retried once, as QA does. Every job's
report gives a verdict per test, and the detector's pure core (``roles.flaky.detect``)
picks its candidates from them, exactly as it does from GitLab.

Printed: detector precision and recall (overall and by flake-rate band: a flake that never
failed in the window cannot be seen, so recall is also given over the flakes that failed
at least once), then the doctor's CI runs per confirmed flaky test: k reproducer runs
(confirmed = at least one failure in them) plus the validator's N on a real fix (all green,
N from the measured rate's lower end, floor 4, ceiling 60). Exit status 1 if precision is
below 0.95, since a false candidate costs CI runs and a human's attention.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from roles.flaky.detect import Verdict, candidates
from roles.flaky.stats import runs_to_validate, wilson

BANDS = ((0.01, 0.05), (0.05, 0.15), (0.15, 0.50001))


@dataclass
class Suite:
    rates: dict[str, float]  # flaky tests and their failure rates
    broken: dict[str, tuple[int, int]]  # broken tests: the commits [from, to) they fail on
    steady: list[str]

    def tests(self) -> list[str]:
        return [*self.rates, *self.broken, *self.steady]


def make_suite(rng: random.Random, tests: int, flaky: int, broken: int) -> Suite:
    names = [f"pkg.mod{n // 20}.Test{n % 20}.test_{n}" for n in range(tests)]
    rng.shuffle(names)
    rates = {name: math.exp(rng.uniform(math.log(0.01), math.log(0.5))) for name in names[:flaky]}
    return Suite(
        rates=rates,
        broken={name: (rng.randrange(0, 100), rng.randrange(5, 30)) for name in names[flaky:flaky + broken]},
        steady=names[flaky + broken :],
    )  # fmt: skip


def job_run(
    rng: random.Random, suite: Suite, commit: int, sha: str, pipeline: int, job: int
) -> list[Verdict]:
    at = f"2026-12-{1 + commit // 60:02d}T{commit % 24:02d}:{job % 60:02d}:00Z"
    verdicts = []
    for test, rate in suite.rates.items():
        passed = rng.random() >= rate
        failure = "" if passed else f"AssertionError: unlucky at 0x{rng.randrange(1 << 32):x}"
        verdicts.append(Verdict(test, sha, pipeline, job, passed, at, failure, "test"))
    for test, (start, length) in suite.broken.items():
        passed = not start <= commit < start + length
        failure = "" if passed else "AssertionError: 2 != 3"
        verdicts.append(Verdict(test, sha, pipeline, job, passed, at, failure, "test"))
    verdicts.extend(
        Verdict(test, sha, pipeline, job, True, at, "", "test") for test in suite.steady
    )
    return verdicts


def history(rng: random.Random, suite: Suite, commits: int) -> list[Verdict]:
    verdicts: list[Verdict] = []
    pipeline = job = 0
    for commit in range(commits):
        sha = f"{commit:040x}"
        for _ in range(2 if rng.random() < 1 / 3 else 1):  # push, and an MR pipeline
            pipeline += 1
            job += 1
            run = job_run(rng, suite, commit, sha, pipeline, job)
            verdicts.extend(run)
            if any(not v.passed for v in run):  # QA retries a red job once
                job += 1
                verdicts.extend(job_run(rng, suite, commit, sha, pipeline, job))
    return verdicts


def doctor_runs(rng: random.Random, rate: float, k: int) -> tuple[bool, int]:
    """(confirmed, CI runs): k reproducer runs, then N validator runs on a real fix."""
    failures = sum(1 for _ in range(k) if rng.random() < rate)
    if failures == 0:
        return False, k
    return True, k + runs_to_validate(wilson(failures, k).low, floor=4, ceiling=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=600)
    parser.add_argument("--flaky", type=int, default=40)
    parser.add_argument("--broken", type=int, default=10)
    parser.add_argument("--commits", type=int, default=120)
    parser.add_argument("--reproduce-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    suite = make_suite(rng, args.tests, args.flaky, args.broken)
    verdicts = history(rng, suite, args.commits)
    found = {c.test for c in candidates(verdicts)}
    truth = set(suite.rates)
    failed_once = {v.test for v in verdicts if not v.passed} & truth
    hits = found & truth
    precision = len(hits) / len(found) if found else 1.0
    pipelines = len({v.pipeline for v in verdicts})
    jobs = len({v.job for v in verdicts})
    print(
        f"history: {len(suite.tests())} tests ({len(truth)} flaky at 1%..50%, "
        f"{len(suite.broken)} broken for a while), {args.commits} commits, "
        f"{pipelines} pipelines, {jobs} job runs, {len(verdicts)} verdicts"
    )
    print(f"candidates: {len(found)}, of which flaky: {len(hits)}")
    print(f"precision: {precision:.3f}")
    print(f"recall: {len(hits) / len(truth):.3f} (of every flaky test)")
    if failed_once:
        print(
            f"recall: {len(hits & failed_once) / len(failed_once):.3f} "
            f"(of the {len(failed_once)} flaky tests that failed at least once)"
        )
    for low, high in BANDS:
        band = {t for t, r in suite.rates.items() if low <= r < high}
        if band:
            print(f"  rate {low:.0%}..{min(high, 0.5):.0%}: {len(band & found)}/{len(band)} found")
    spent, confirmed = 0, 0
    for test in sorted(hits):
        ok, runs = doctor_runs(rng, suite.rates[test], args.reproduce_runs)
        spent += runs
        confirmed += ok
    if confirmed:
        print(
            f"CI runs: {spent} for {len(hits)} candidates, {confirmed} confirmed by the "
            f"reproducer: {spent / confirmed:.1f} runs per confirmed flaky test "
            f"(k = {args.reproduce_runs}, validator N on a real fix)"
        )
    return 0 if precision >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
