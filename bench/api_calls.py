"""GitLab API calls crewline spends: the rate-limit budget of a host.

Run: ``.venv/bin/python bench/api_calls.py [--waiting 0 250] [--dependants 1000] [--reps 5]
[--lifecycles 3]``

Lifecycles (``bench/lifecycle.py``): one goal from pm-ready to done with the demo agent and
one worker, polling only and with webhooks on, as medians over ``--lifecycles`` runs: GitLab
calls, crewline's CPU seconds, and the time from an issue becoming ready to its claim.

Dependants: ``--dependants`` N issues waiting at dev-ready on one dependency that is not
done; the calls and seconds of an engine pass (the first pass lists everything and reads
each issue's dependencies once, and the pass made the listing's overlap later, 30 s,
settles the listing: both are printed apart; the figure is the median of the passes after
them, a host's steady state).

Against the simulator (the demo project), for each ``--waiting`` N it files N issues in each
of four waiting states: dev-ready behind a dependency that is not done, plan-review (a human
gate), merge-ready without a merge request (the gate the janitor watches) and blocked. With
nothing claimable, it counts the GitLab calls of one engine pass (the project's listing,
refreshed as a delta, from which every role checks what may start; and the fleet's state a
poll reads: the control issue and the learnings index, roles/fleet_state.py) and of one
janitor pass (label repair, merged by hand, moved after QA, unanswered questions, expired
claims, stuck work). The host is set up as `crewline run` starts: labels and control issue.
Calls are counted from the audit trail, which records every GitLab call crewline makes,
read or write.

It prints the median calls per pass over ``--reps`` passes, the busiest operations, and
what that makes per minute at the default schedule (one poll and one janitor pass a
minute), beside GitLab.com's limit of 2,000 authenticated API requests a minute per user.

Last, the lease throughput (``bench/leases.py``, ``--leases`` reps) and the idle RSS of
``crewline run`` (``bench/idle_rss.py``, ``--rss`` reps), each run as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gitlab
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycle import answered_requests, calls_since, one_lifecycle
from bot.app import Runtime, build_runtime
from bot.config import Secrets
from bot.demo import PROJECT, demo_config
from forge.issue_index import OVERLAP
from forge.labels import sync_labels
from roles.engine.janitor import sweep
from roles.notify import EventLog
from sim.core.app import RunningSim
from sim.core.base import SimConfig
from workflow import default_workflow

GITLAB_COM_LIMIT = 2000  # authenticated API requests per minute per user (GitLab.com)


def file_dependants(sim: RunningSim, dependants: int) -> None:
    gl = gitlab.Gitlab(sim.base_url, private_token=sim.config.root_token)
    project = gl.projects.get(PROJECT)
    gate = project.issues.create({"title": "Not done yet", "labels": "workflow::plan-review"})
    for n in range(dependants):
        project.issues.create(
            {
                "title": f"waits {n}",
                "description": f"Depends on #{gate.iid}",
                "labels": "workflow::dev-ready",
            }
        )


def file_waiting_work(sim: RunningSim, waiting: int) -> None:
    wf = default_workflow()
    gl = gitlab.Gitlab(sim.base_url, private_token=sim.config.root_token)
    project = gl.projects.get(PROJECT)
    gate = project.issues.create(
        {"title": "A plan a human reviews", "labels": "workflow::plan-review"}
    )
    for n in range(waiting):
        for state, description in (
            ("dev-ready", f"Depends on #{gate.iid}"),
            ("plan-review", "Its plan waits for a human."),
            ("merge-ready", "Waits for a merge decision."),
            ("blocked", "Stopped for a human."),
        ):
            project.issues.create(
                {
                    "title": f"{state} {n}",
                    "description": description,
                    "labels": wf.state(state).label,
                }
            )


@dataclass
class Passes:
    """Per repetition: GitLab calls and seconds of one engine pass, and one janitor pass."""

    ticks: list[int] = field(default_factory=list)
    sweeps: list[int] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # the event loop thread's CPU
    # The first engine+janitor pass (the full listing) and the one that settles the listing
    # after the overlap: calls, the engine pass's seconds, and HTTP requests of each.
    start: list[tuple[int, float, int]] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)  # HTTP requests of each engine+janitor pass


@dataclass
class OnePass:
    """One engine pass and the janitor pass after it."""

    tick: Counter[str]  # the engine pass's calls per operation
    sweep: Counter[str]  # the janitor pass's
    seconds: float  # the engine pass's wall time
    cpu: float  # the engine pass's CPU on the event loop thread
    requests: int  # HTTP requests of both (a list's pages each count)
    started: int  # runs the engine pass started


class _Passer:
    """Makes engine+janitor passes and reads what each cost from the audit trail."""

    def __init__(self, runtime: Runtime, db: Path, last: int) -> None:
        self.runtime, self.db, self.last = runtime, db, last

    async def _calls(self) -> Counter[str]:
        await self.runtime.storage.audit.flush_reads()
        self.last, counted = calls_since(self.db, self.last)
        return counted

    async def one(self) -> OnePass:
        answered = answered_requests(self.runtime)  # every HTTP answer, each page of a list
        began, cpu = time.perf_counter(), time.thread_time()
        started = await self.runtime.engine.tick()
        seconds, cpu = time.perf_counter() - began, time.thread_time() - cpu
        tick = await self._calls()
        await sweep(self.runtime.services)
        swept = await self._calls()
        requests = answered_requests(self.runtime) - answered
        return OnePass(tick, swept, seconds, cpu, requests, started)


async def measure(runtime: Runtime, db: Path, reps: int) -> Passes:
    """``reps`` engine and janitor passes, after the first pass (the full listing) and the
    one that settles the listing, measured apart (``Passes.start``): the waiting work was
    all filed a moment ago, and a listing's deltas re-read everything changed within the
    overlap (30 s) of the newest change until a pass that long after it
    (forge/issue_index.py); a host meets that once after a burst."""
    passes = Passes()
    # At the default schedule (a poll a minute) every engine pass also reads the fleet's
    # state (the control issue, the learnings index; roles/fleet_state.py), which a host
    # does at most every `max_age` seconds: passes here follow each other at once.
    runtime.services.fleet.max_age = 0
    await runtime.storage.audit.flush_reads()
    passer = _Passer(runtime, db, calls_since(db, 0)[0])
    for wait in (0.0, OVERLAP.total_seconds() + 1):
        await asyncio.sleep(wait)
        first = await passer.one()
        calls = sum(first.tick.values()) + sum(first.sweep.values())
        passes.start.append((calls, first.seconds, first.requests))
    for _ in range(reps):
        one = await passer.one()
        assert one.started == 0, "the bench's work must wait, not start"
        passes.seconds.append(one.seconds)
        passes.cpus.append(one.cpu)
        passes.ticks.append(sum(one.tick.values()))
        passes.sweeps.append(sum(one.sweep.values()))
        passes.ops.update(one.tick + one.sweep)
        passes.requests.append(one.requests)
    return passes


async def measure_waiting(base: Path, file: Callable[[RunningSim], None], reps: int) -> Passes:
    """Engine and janitor passes of a host started as `crewline run` starts (labels, control
    issue) on the demo project, after ``file`` filed the waiting work."""
    sim = RunningSim(SimConfig(state_dir=base / "sim", seed="demo")).start()
    try:
        file(sim)
        config = demo_config(base, sim.base_url)
        runtime = await build_runtime(
            config, Secrets(gitlab_token=SecretStr(sim.config.bot_token)), notifier=EventLog()
        )
        try:
            await sync_labels(runtime.services.gateway, PROJECT)
            await runtime.services.fleet.ensure()
            return await measure(runtime, config.storage.path, reps)
        finally:
            await runtime.close()
    finally:
        sim.stop()


async def bench_dependants(dependants: int, reps: int) -> None:
    with tempfile.TemporaryDirectory(
        prefix="crewline-bench-deps-", ignore_cleanup_errors=True
    ) as tmp:
        passes = await measure_waiting(
            Path(tmp), lambda sim: file_dependants(sim, dependants), reps
        )
    ticks, seconds, cpus = passes.ticks, passes.seconds, passes.cpus
    print(f"{dependants} issues waiting at dev-ready on one dependency")
    print_start(passes)
    print(
        f"  engine pass after them: calls {' '.join(map(str, ticks))} median "
        f"{statistics.median(ticks):.0f}; seconds "
        f"{' '.join(f'{s:.3f}' for s in seconds)} median {statistics.median(seconds):.3f}"
    )
    print(f"  HTTP requests per engine+janitor pass: {' '.join(map(str, passes.requests))}")
    print(
        f"  event-loop CPU-s per pass: {' '.join(f'{c:.3f}' for c in cpus)} "
        f"median {statistics.median(cpus):.3f} (wall time includes waiting on a loaded host)"
    )


def print_start(passes: Passes) -> None:
    (first, first_s, first_http), (settling, settling_s, settling_http) = passes.start
    print(
        f"  first engine+janitor pass (full listing): {first} calls ({first_http} HTTP "
        f"requests: a list's pages each count), engine pass {first_s:.2f} s; the pass "
        f"{OVERLAP.total_seconds():.0f} s later that settles the listing: {settling} calls "
        f"({settling_http} HTTP requests), engine pass {settling_s:.2f} s"
    )


async def bench_lifecycles(runs: int, poll: float, limit: float = 180) -> None:
    for webhooks in (False, True):
        results = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="crewline-bench-life-") as tmp:
                results.append(
                    await one_lifecycle(Path(tmp), webhooks=webhooks, poll=poll, limit=limit)
                )
        calls = [r.calls for r in results]
        cpu = [r.cpu_seconds for r in results]
        mode = "webhooks on" if webhooks else f"polling only (poll {poll:g} s)"
        print(f"one goal pm-ready -> done, demo agent, one worker, {mode}:")
        print(f"  GitLab calls: {' '.join(map(str, calls))}  median {statistics.median(calls):.0f}")
        requests = [r.http_requests for r in results]
        print(
            f"  HTTP requests: {' '.join(map(str, requests))}  median "
            f"{statistics.median(requests):.0f} (a list's pages each count, retries too)"
        )
        print(
            f"  crewline CPU-s: {' '.join(f'{c:.2f}' for c in cpu)}  "
            f"median {statistics.median(cpu):.2f}"
        )
        for label in sorted({label for r in results for label in r.to_claim}):
            waits = sorted(r.to_claim[label] * 1000 for r in results if label in r.to_claim)
            p95 = waits[min(len(waits) - 1, round(0.95 * (len(waits) - 1)))]
            parts = [r.parts[label] for r in results if label in r.parts]
            spent = ", ".join(
                f"{part} {statistics.median(p[part] * 1000 for p in parts):.0f}"
                for part in (parts[0] if parts else {})
            )
            print(
                f"  ready to claim, {label}: p50 {statistics.median(waits):.0f} ms, "
                f"p95 {p95:.0f} ms (n={len(waits)}); medians ms: {spent}"
            )
        carried = Counter(role for r in results for role in r.carried)
        print(
            "  carried over (no ready state, decision 0037): "
            + (", ".join(f"{role} {n / runs:.0f}" for role, n in sorted(carried.items())) or "none")
        )
        print(
            "  the host's start before it (first full listing, once per process): "
            + " ".join(str(r.start_calls) for r in results)
        )
        print("  calls per operation (median per lifecycle):")
        for what in sorted({op for r in results for op in r.by_operation}):
            counts = [r.by_operation.get(what, 0) for r in results]
            print(f"    {what.removeprefix('gitlab.'):<24} {statistics.median(counts):>4.0f}")


async def bench(waiting: int, reps: int) -> None:
    with tempfile.TemporaryDirectory(
        prefix="crewline-bench-api-", ignore_cleanup_errors=True
    ) as tmp:
        passes = await measure_waiting(Path(tmp), lambda sim: file_waiting_work(sim, waiting), reps)
    ticks, sweeps, ops, seconds = passes.ticks, passes.sweeps, passes.ops, passes.seconds
    issues = 4 * waiting + 1
    tick, janitor = statistics.median(ticks), statistics.median(sweeps)
    per_minute = tick + janitor  # defaults: poll_seconds = janitor_seconds = 60
    print(
        f"{issues} waiting issues ({waiting} in each of dev-ready, plan-review, merge-ready, blocked)"
    )
    print_start(passes)
    print(
        f"  engine pass   calls per pass: {' '.join(map(str, ticks))}  median {tick:.0f}; "
        f"seconds median {statistics.median(seconds):.3f}"
    )
    print(f"  janitor pass  calls per pass: {' '.join(map(str, sweeps))}  median {janitor:.0f}")
    print(f"  HTTP requests per engine+janitor pass: {' '.join(map(str, passes.requests))}")
    print(
        f"  at the default schedule: {per_minute:.0f} calls a minute per project, "
        f"{per_minute / GITLAB_COM_LIMIT:.1%} of GitLab.com's {GITLAB_COM_LIMIT:,}/min"
    )
    busiest = ", ".join(f"{what} {count / reps:.0f}" for what, count in ops.most_common(5))
    print(f"  busiest per engine+janitor pass: {busiest}")


def other_bench(script: str, reps: int) -> None:
    """The issue's last two rows, measured by their own benches as they are."""
    bench_dir = Path(__file__).resolve().parent
    print(f"{script} --reps {reps}:", flush=True)
    subprocess.run(
        [sys.executable, str(bench_dir / script), "--reps", str(reps)],
        cwd=bench_dir.parent,
        check=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, nargs="*", default=[0, 250])
    parser.add_argument("--dependants", type=int, nargs="*", default=[1000])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--lifecycles", type=int, default=3, help="runs per mode (0: none)")
    parser.add_argument("--poll", type=float, default=60.0, help="poll seconds in lifecycles")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds a lifecycle may take")
    parser.add_argument("--leases", type=int, default=3, help="bench/leases.py reps (0: none)")
    parser.add_argument("--rss", type=int, default=3, help="bench/idle_rss.py reps (0: none)")
    args = parser.parse_args()
    for waiting in args.waiting:
        asyncio.run(bench(waiting, args.reps))
    for dependants in args.dependants:
        asyncio.run(bench_dependants(dependants, args.reps))
    if args.lifecycles:
        asyncio.run(bench_lifecycles(args.lifecycles, args.poll, args.limit))
    if args.leases:
        other_bench("leases.py", args.leases)
    if args.rss:
        other_bench("idle_rss.py", args.rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
