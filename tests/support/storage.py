"""Helpers for the storage tests: a manual clock and the lease-race worker process.

The race worker runs in its own OS process (multiprocessing, spawn), so it lives in an importable
module rather than in a test file.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

from storage import Database, LeaseStore


class ManualClock:
    """A clock tests move by hand: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, for looking under the hood (and for tampering)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


# Binary fractions of a second: time.time() + ttl - ttl is then exact, so the grant instant
# recovered from a lease (expires_at - ttl) is exactly the clock reading inside the transaction.
HOLD_TTL = 8.0
CRASH_TTL = 2.0**-6


def race_worker(
    db_path: str, worker: int, keys: list[str], seconds: float, barrier: Barrier
) -> None:
    """Grab the keys for ``seconds``; write every grant to ``<db>.worker<N>.jsonl``.

    Most grants are released after a short hold (some renewed first); about one in ten is
    abandoned with a 1/64 s TTL, as if the worker crashed, so others take over after expiry.
    """
    grants = asyncio.run(_race(Path(db_path), worker, keys, seconds, barrier))
    log = Path(f"{db_path}.worker{worker}.jsonl")
    log.write_text("".join(json.dumps(grant) + "\n" for grant in grants), encoding="utf-8")


async def _race(
    path: Path, worker: int, keys: list[str], seconds: float, barrier: Barrier
) -> list[dict[str, object]]:
    db = await Database.open(path)
    leases = LeaseStore(db)
    holder = f"worker-{worker}"
    rng = random.Random(worker)
    grants: list[dict[str, object]] = []
    try:
        await asyncio.to_thread(barrier.wait, 60)
        deadline = time.time() + seconds
        while time.time() < deadline:
            key = rng.choice(keys)
            crash = rng.random() < 0.1
            ttl = CRASH_TTL if crash else HOLD_TTL
            lease = await leases.acquire(key, holder, ttl)
            if lease is None:
                await asyncio.sleep(rng.uniform(0, 0.003))
                continue
            granted_at = lease.expires_at - ttl
            if crash:
                grants.append(_grant(key, lease.token, granted_at, lease.expires_at, "abandoned"))
                continue
            await asyncio.sleep(rng.uniform(0, 0.002))
            if rng.random() < 0.3:
                renewed = await leases.renew(lease, HOLD_TTL)
                if renewed is None or renewed.token != lease.token:
                    raise AssertionError(f"{holder} could not renew its live lease {lease}")
                lease = renewed
            released_at = time.time()
            if not await leases.release(lease):
                raise AssertionError(f"{holder} could not release its live lease {lease}")
            grants.append(_grant(key, lease.token, granted_at, released_at, "released"))
    finally:
        await db.close()
    return grants


def _grant(key: str, token: int, start: float, end: float, how: str) -> dict[str, object]:
    return {"key": key, "token": token, "start": start, "end": end, "how": how}


@dataclass(frozen=True)
class Grant:
    key: str
    token: int
    start: float
    end: float
    how: str
    worker: int


def read_grants(db_path: Path, workers: int) -> dict[str, list[Grant]]:
    """Every worker's logged grants, per key, in token order."""
    by_key: dict[str, list[Grant]] = defaultdict(list)
    for worker in range(workers):
        log = Path(f"{db_path}.worker{worker}.jsonl")
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            by_key[record["key"]].append(Grant(worker=worker, **record))
    for grants in by_key.values():
        grants.sort(key=lambda grant: grant.token)
    return dict(by_key)
