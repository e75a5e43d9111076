"""Lease throughput: acquire+release cycles per second, 1 process vs N contending on one file.

Run: ``.venv/bin/python bench/leases.py [--seconds 1.0] [--reps 5] [--processes 4] [--keys 4]``

Every worker process opens the same SQLite file (WAL; the leases' own connection commits with
synchronous=NORMAL, docs/decisions/0029) and loops: pick a key, acquire it, release it at once. Each repetition starts on a shared
barrier and lasts ``--seconds``. Every grant is logged with its fencing token and the interval it
was held (grant instant read inside the granting transaction, end read before the release), and
the logs of all processes are checked afterwards: a token granted twice, or two holders of one
key whose intervals overlap, counts as a double grant. Exit status 1 if there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from storage import Database, LeaseStore

# A power of two: now + TTL - TTL is then exact, so expires_at - TTL is the grant instant.
TTL = 64.0
GOAL_PER_SECOND = 5000  # acquire+release cycles, one process (issue 14)


@dataclass(frozen=True)
class RepResult:
    rep: int
    cycles: int
    refused: int
    elapsed: float
    cpu: float


def worker(
    db_path: str,
    index: int,
    keys: list[str],
    reps: int,
    seconds: float,
    barrier: Barrier,
    results: Queue[tuple[int, list[RepResult]]],
) -> None:
    grants, reps_done = asyncio.run(_loop(Path(db_path), index, keys, reps, seconds, barrier))
    Path(f"{db_path}.grants{index}.jsonl").write_text(
        "".join(json.dumps(grant) + "\n" for grant in grants), encoding="utf-8"
    )
    results.put((index, reps_done))


async def _loop(
    path: Path, index: int, keys: list[str], reps: int, seconds: float, barrier: Barrier
) -> tuple[list[list[object]], list[RepResult]]:
    db = await Database.open(path)
    leases = LeaseStore(db)
    holder = f"bench-{index}"
    rng = random.Random(index)
    grants: list[list[object]] = []
    done: list[RepResult] = []
    try:
        for rep in range(reps):
            await asyncio.to_thread(barrier.wait, 60)
            cycles = refused = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - started) < seconds:
                key = rng.choice(keys)
                lease = await leases.acquire(key, holder, TTL)
                if lease is None:
                    refused += 1
                    continue
                end = time.time()
                if not await leases.release(lease):
                    raise RuntimeError(f"{holder} lost its live lease {lease}")
                grants.append([key, lease.token, lease.expires_at - TTL, end])
                cycles += 1
            done.append(RepResult(rep, cycles, refused, elapsed, time.process_time() - cpu_started))
    finally:
        await db.close()
    return grants, done


def run_mode(
    directory: Path, processes: int, keys: list[str], reps: int, seconds: float
) -> tuple[list[float], list[float], list[float], int, int]:
    """Per repetition: aggregate cycles/s, refused acquires/s and cycles per CPU-second of the
    workers; then grants and double grants."""
    path = directory / f"leases-{processes}p.sqlite3"
    asyncio.run(_migrate(path))  # once up front: the race is about leases, not the schema
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[tuple[int, list[RepResult]]] = context.Queue()
    workers = [
        context.Process(
            target=worker, args=(str(path), index, keys, reps, seconds, barrier, results)
        )
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    collected = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(30)
    if any(process.exitcode != 0 for process in workers):
        raise SystemExit(f"a worker failed: exit codes {[p.exitcode for p in workers]}")
    cycle_rates, refused_rates, cpu_rates = [], [], []
    for rep in range(reps):
        rows = [reps_done[rep] for _, reps_done in collected]
        cycle_rates.append(sum(row.cycles / row.elapsed for row in rows))
        refused_rates.append(sum(row.refused / row.elapsed for row in rows))
        cpu_rates.append(sum(row.cycles for row in rows) / sum(row.cpu for row in rows))
    grants, doubles = count_double_grants(path, processes)
    return cycle_rates, refused_rates, cpu_rates, grants, doubles


async def _migrate(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


def count_double_grants(path: Path, processes: int) -> tuple[int, int]:
    """(grants logged, double grants): repeated tokens plus overlapping holds of one key."""
    by_key: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for index in range(processes):
        log = Path(f"{path}.grants{index}.jsonl")
        for line in log.read_text(encoding="utf-8").splitlines():
            key, token, start, end = json.loads(line)
            by_key[key].append((token, start, end))
    total = doubles = 0
    for grants in by_key.values():
        grants.sort()
        total += len(grants)
        doubles += len(grants) - len({token for token, _, _ in grants})
        doubles += sum(1 for before, after in itertools.pairwise(grants) if before[2] > after[1])
    return total, doubles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per mode")
    parser.add_argument("--processes", type=int, default=4, help="contending processes")
    parser.add_argument("--keys", type=int, default=4, help="lease keys shared by the workers")
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.reps < 1 or args.processes < 2 or args.keys < 1:
        parser.error("need --seconds > 0, --reps >= 1, --processes >= 2 and --keys >= 1")
    keys = [f"issue:bench/app:{number}" for number in range(1, args.keys + 1)]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="crewline-bench-") as temp:
        directory = Path(temp)
        print(
            f"lease bench: {args.reps} reps x {args.seconds:g} s, {len(keys)} keys, "
            f"db in {directory} (WAL, leases synchronous=NORMAL)"
        )
        began = time.perf_counter()
        single, _, single_cpu, single_grants, single_doubles = run_mode(
            directory, 1, keys, args.reps, args.seconds
        )
        many, refused, many_cpu, many_grants, many_doubles = run_mode(
            directory, args.processes, keys, args.reps, args.seconds
        )
        took = time.perf_counter() - began
    print(f"1 process    acquire+release/s per rep: {_figures(single)}")
    print(
        f"             median {statistics.median(single):.0f} (wall clock, goal >= "
        f"{GOAL_PER_SECOND:,}); per CPU-second of the process: "
        f"median {statistics.median(single_cpu):.0f}"
    )
    print(f"{args.processes} processes  acquire+release/s per rep: {_figures(many)}")
    print(
        f"             median {statistics.median(many):.0f} in total, "
        f"{statistics.median(many) / args.processes:.0f} per process; "
        f"refused acquires/s median {statistics.median(refused):.0f}; "
        f"per CPU-second of the workers: median {statistics.median(many_cpu):.0f}"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
        "(wall-clock rates fall with the load; the CPU-second rates much less)"
    )
    print(
        f"ratio {args.processes} processes / 1: {statistics.median(many) / statistics.median(single):.2f}"
    )
    doubles = single_doubles + many_doubles
    print(
        f"grants checked: {single_grants + many_grants}; double grants: {doubles} "
        f"(bench took {took:.1f} s)"
    )
    return 1 if doubles else 0


def _figures(values: list[float]) -> str:
    return " ".join(f"{value:.0f}" for value in values)


if __name__ == "__main__":
    sys.exit(main())
