"""The least CPU the plumbing of one goal lifecycle costs crewline's process: how many git
commands, other launches, SQLite trips and GitLab requests a real lifecycle makes (counted
on one, ``bench/lifecycle.py`` with ``count_plumbing``), times what each costs when crewline
makes it alone here. Issue 14 asks for at most 0.1 CPU-s for the whole lifecycle; this says
how much of that the plumbing alone takes, before any of crewline's own logic.

Run: ``.venv/bin/python bench/cpu_floor.py [--rounds 3] [--reps 200]``

Unit costs are medians over ``--rounds`` rounds of ``--reps`` each, as user+system
CPU-seconds of this process (the programs' own CPU is theirs, not counted, as in the
lifecycle's figure). An SQLite trip is priced as a read (the cheapest trip), so the floor is
a lower bound; the sandbox's argument building and the webhook receiver are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycle import BOT, Lifecycle, one_lifecycle, sim_process
from forge.lean_http import LeanHttp
from roles.workspace.procgroup import run_group
from roles.workspace.procthread import run_short
from storage import Database

GOAL_CPU_SECONDS = 0.1  # issue 14


async def cost(reps: int, one: Callable[[], Awaitable[object]]) -> float:
    """CPU-seconds of this process per call of ``one`` (after a few to warm up)."""
    for _ in range(5):
        await one()
    began = time.process_time()
    for _ in range(reps):
        await one()
    return (time.process_time() - began) / reps


async def unit_costs(base: Path, reps: int) -> dict[str, float]:
    env = {"PATH": os.environ["PATH"]}
    db = await Database.open(base / "floor.sqlite3")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitlab")
    loop = asyncio.get_running_loop()
    with sim_process(base / "sim") as url:
        lean = LeanHttp(url, BOT, timeout=10, tls=None, on_answer=lambda answer: None)
        try:
            return {
                "git commands": await cost(
                    reps,
                    lambda: run_short(["git", "--version"], cwd=base, env=env, timeout_seconds=10),
                ),
                "other launches": await cost(
                    reps, lambda: run_group(["true"], cwd=base, env=env, timeout_seconds=10)
                ),
                "SQLite trips": await cost(reps, lambda: db.fetchone("SELECT 1")),
                "GitLab requests": await cost(
                    reps, lambda: loop.run_in_executor(pool, lean.get, "/version")
                ),
            }
        finally:
            lean.close()
            pool.shutdown()
            await db.close()


def counts(lifecycle: Lifecycle) -> dict[str, int]:
    launches = dict(lifecycle.launches)
    git = launches.pop("git", 0)
    return {
        "git commands": git,
        "other launches": sum(launches.values()),
        "SQLite trips": lifecycle.sqlite_trips,
        "GitLab requests": lifecycle.http_requests,
    }


async def main(rounds: int, reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="crewline-bench-floor-") as tmp:
        lifecycle = await one_lifecycle(Path(tmp), webhooks=False, poll=60, count_plumbing=True)
    made = counts(lifecycle)
    print("one goal pm-ready -> done, demo agent, one worker, polling only:", flush=True)
    print(f"  crewline CPU-s: {lifecycle.cpu_seconds:.3f} (goal {GOAL_CPU_SECONDS})")
    print(f"  launches by program: {dict(sorted(lifecycle.launches.items()))}")
    measured: dict[str, list[float]] = {kind: [] for kind in made}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="crewline-bench-floor-") as tmp:
            for kind, seconds in (await unit_costs(Path(tmp), reps)).items():
                measured[kind].append(seconds)
    print(f"the plumbing's least CPU (unit costs: median of {rounds} rounds of {reps}):")
    floor = 0.0
    for kind, number in made.items():
        unit = statistics.median(measured[kind])
        floor += number * unit
        print(f"  {kind:16} {number:4d} x {unit * 1000:.3f} ms = {number * unit:.3f} CPU-s")
    print(f"  floor: {floor:.3f} CPU-s, {floor / GOAL_CPU_SECONDS:.0%} of the goal's budget")
    rest = lifecycle.cpu_seconds - floor
    print(
        f"  the rest of the lifecycle's {lifecycle.cpu_seconds:.3f} CPU-s: {rest:.3f}, crewline's own work"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.reps))
