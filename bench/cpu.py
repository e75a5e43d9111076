"""crewline's CPU per goal lifecycle: the worker's own process and, apart, the children it ran.

Run: ``.venv/bin/python bench/cpu.py [--runs 3] [--poll 60] [--webhooks]``

Each run is one goal from pm-ready to done with the demo agent and one worker
(``bench/lifecycle.py``: the simulator in its own process, the harness's own calls taken
out of the figure). Prints each run and the medians: user+system CPU-seconds of crewline's
process, of the children it started meanwhile (git, the sandbox, the agent CLI), and the
GitLab calls. CPU-seconds, not wall time, are the figure to trust on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycle import Lifecycle, one_lifecycle

GOAL_CPU_SECONDS = 0.1  # issue 14


async def lifecycles(runs: int, poll: float, webhooks: bool) -> list[Lifecycle]:
    results = []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="crewline-bench-cpu-") as tmp:
            result = await one_lifecycle(Path(tmp), webhooks=webhooks, poll=poll)
        results.append(result)
        print(
            f"run {run + 1}: crewline {result.cpu_seconds:.3f} CPU-s, children "
            f"{result.children_cpu_seconds:.3f} CPU-s, {result.calls} GitLab calls",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="lifecycles to measure")
    parser.add_argument("--poll", type=float, default=60.0, help="the host's poll, seconds")
    parser.add_argument("--webhooks", action="store_true", help="events by webhook as well")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.poll <= 0:
        parser.error("need --runs >= 1 and --poll > 0")
    results = asyncio.run(lifecycles(args.runs, args.poll, args.webhooks))
    own = statistics.median(r.cpu_seconds for r in results)
    children = statistics.median(r.children_cpu_seconds for r in results)
    calls = statistics.median(r.calls for r in results)
    mode = "webhooks on" if args.webhooks else f"polling only (poll {args.poll:g} s)"
    print(
        f"one goal pm-ready -> done, demo agent, one worker, {mode}, median of {args.runs}: "
        f"crewline {own:.3f} CPU-s (goal <= {GOAL_CPU_SECONDS}), children {children:.3f} "
        f"CPU-s, {calls:.0f} GitLab calls; load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
