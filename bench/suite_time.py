"""Time of the default test run: wall seconds and CPU seconds (the run and everything it
started), as medians of several runs, optionally side by side with an older checkout.

Run: ``.venv/bin/python bench/suite_time.py [--reps 2] [--against /path/to/checkout]
[--against-args "-n 4"] [-- pytest arguments]``

Each repetition runs ``<venv>/bin/python -m pytest -q -p no:cacheprovider`` in this checkout
(its configured options: four xdist workers, slow tests left out) and, with ``--against``,
the same command in the other checkout (its own ``.venv``, plus ``--against-args``: a checkout
from before xdist needs ``-n 4`` to be compared fairly), alternating the two so a machine that
speeds up or slows down during the bench moves both alike. A machine's speed drifts by tens of
percent from hour to hour, so only runs taken together compare: CPU seconds move less than wall
seconds. Prints every run, the medians and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from tests.support.signals import restore_ctrl_c  # noqa: E402

SUMMARY = re.compile(r"(\d+) passed")


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    passed: int
    ok: bool


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(checkout: Path, extra: list[str]) -> Run:
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: create the checkout's virtual environment first")
    argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    cpu, start = children_cpu(), time.monotonic()
    done = subprocess.run(argv, cwd=checkout, capture_output=True, text=True, check=False)
    wall, cpu = time.monotonic() - start, children_cpu() - cpu
    found = SUMMARY.findall(done.stdout)
    return Run(wall, cpu, int(found[-1]) if found else 0, done.returncode == 0)


def show(label: str, run: Run) -> None:
    verdict = "" if run.ok else "  (tests failed)"
    print(f"{label:<9} {run.wall:7.1f} s wall {run.cpu:7.1f} CPU-s {run.passed:5d} passed{verdict}")


def medians(label: str, runs: list[Run]) -> tuple[float, float]:
    wall = statistics.median(run.wall for run in runs)
    cpu = statistics.median(run.cpu for run in runs)
    print(f"{label:<9} median {wall:7.1f} s wall {cpu:7.1f} CPU-s over {len(runs)} runs")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--against", type=Path, help="another checkout to time alternately")
    parser.add_argument("--against-args", default="", help="extra pytest arguments for it")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments for both")
    args = parser.parse_args()
    restore_ctrl_c()  # for the suites it starts, whose tests send Ctrl-C
    here: list[Run] = []
    other: list[Run] = []
    for rep in range(1, args.reps + 1):
        if args.against:
            extra = shlex.split(args.against_args) + args.pytest_args
            other.append(timed_run(args.against.resolve(), extra))
            show(f"against{rep}", other[-1])
        here.append(timed_run(HERE, args.pytest_args))
        show(f"this{rep}", here[-1])
    wall, cpu = medians("this", here)
    if other:
        base_wall, base_cpu = medians("against", other)
        print(
            f"this / against: wall {wall / base_wall:.2f} ({1 - wall / base_wall:+.0%} faster), "
            f"CPU {cpu / base_cpu:.2f}"
        )
    sys.exit(0 if all(run.ok for run in here) else 1)


if __name__ == "__main__":
    main()
