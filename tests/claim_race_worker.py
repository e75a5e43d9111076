"""A crewline worker process for the claim race tests: its own SQLite file, its own
gateway, racing other processes for the PM role's ready issues on one simulator.

Each win is appended to ``--out`` as ``<iid> <run>`` and flushed before the issue moves
on, so the test sees every claim even from a process it kills. With ``--hold`` the worker
claims one issue and then sleeps forever, never renewing (the test SIGKILLs it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forge.claims import Claims
from forge.client import GitLabClient, RetryPolicy
from forge.gateway import Gateway
from forge.guard import Guard
from forge.settings import GitLabSettings
from storage import Storage
from workflow import default_workflow


async def work(args: argparse.Namespace) -> None:
    storage = await Storage.open(Path(args.db))
    client = GitLabClient(
        GitLabSettings(url=args.url, threads=2),
        "sim-bot-token",
        retry=RetryPolicy(max_retries=8, budget_seconds=60, base_delay=0.05),
    )
    gateway = Gateway(
        client, guard=Guard(), audit=storage.audit, workflow=default_workflow(), who=args.worker
    )
    claims = Claims(gateway, storage.leases, worker=args.worker, ttl_seconds=args.ttl)
    out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115, ASYNC230 - one small append file for the whole run
    empty_rounds = 0
    attempts = lost = 0
    rng = random.Random(args.worker)
    try:
        while empty_rounds < 3:
            running = await claims.running(args.project, "pm") if args.janitor else []
            for issue in running:
                await claims.expire(issue, "pm", reason="claim expired; re-queued (attempt 2 of 3)")
            ready = await gateway.list_ready(args.project, "pm")
            if not ready:
                # A janitor waits for running work to expire rather than giving up.
                empty_rounds += 0 if running else 1
                await asyncio.sleep(0.2)
                continue
            empty_rounds = 0
            rng.shuffle(ready)
            for issue in ready[: args.batch]:
                run = uuid.uuid4().hex[:12]
                attempts += 1
                claim = await claims.claim(issue, "pm", run)
                if claim is None:
                    lost += 1
                    continue
                out.write(f"{issue.iid} {run}\n")
                out.flush()
                if args.hold:
                    await asyncio.Event().wait()
                await gateway.transition(
                    args.project, issue.iid, "plan-review", expect={"pm-running"}
                )
                await claims.release(claim)
    finally:
        out.close()
        # Tried and lost claims (to another worker's lower note id, or no longer ready).
        Path(args.out).with_suffix(".stats").write_text(f"{attempts} {lost}\n")
        await client.close()
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--ttl", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--janitor", action="store_true")
    asyncio.run(work(parser.parse_args()))


if __name__ == "__main__":
    main()
