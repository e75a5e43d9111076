"""One crewline host for the chaos harness: the demo runtime against a running simulator,
with its own worker id, database and workspaces, resuming whatever an earlier (killed)
process of the same worker left, then working every issue until it is stopped.

Run as ``python bench/chaos_worker.py --url SIM --base DIR --worker ID`` with the bot's token
in ``CREWLINE_GITLAB_TOKEN`` and the merge identity's in ``CREWLINE_GITLAB_MERGE_TOKEN``. Its
console desk approves every plan and merge, as a human who always says yes would, so every
goal can reach ``done`` without anyone watching. Lines on stdout (flushed at once):

    up                      the runtime is built
    gate-kill <key>         it SIGKILLs itself right after posting a decision note
    stopped                 it ended on SIGTERM

It drives the engine exactly as ``crewline worker`` does (``bot/serve.py``): the scheduler's
poll and janitor jobs (``bot/scheduler.py``) and ``Engine.run_forever``, which resumes this
worker's interrupted runs until one pass succeeds and asks again about gates no desk took.
A harness with its own loop once left out the re-asking, so a desk that failed under the
storm left its goal at the gate for good, which no real host would do.

``CHAOS_GATE_KILL_RATE`` (0..1) is the chance that this process kills itself right after
writing a gate's decision note, before the transition that note records: the moment a
decision is most easily lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import Secrets
from bot.console import ConsoleDesk
from bot.demo import demo_config
from bot.scheduler import build_scheduler
from roles.notify import EventLog

_DECISION = re.compile(r"<!-- crewline:note key=(decision:\S+) -->")


def say(line: str) -> None:
    print(line, flush=True)


def _kill_after_decisions(runtime: Runtime, rate: float, rng: random.Random) -> None:
    """Wrap the gateway's note writes: after a decision note, die now with chance ``rate``."""
    gateway = runtime.services.gateway
    post = gateway.post_note

    async def post_note(project: str, iid: int, body: str, **kwargs: Any) -> Any:
        note = await post(project, iid, body, **kwargs)
        found = _DECISION.search(body)
        if found and rng.random() < rate:
            say(f"gate-kill {found[1]}")
            os.kill(os.getpid(), signal.SIGKILL)
        return note

    gateway.post_note = post_note  # type: ignore[method-assign]


async def work(args: argparse.Namespace) -> int:
    config = demo_config(Path(args.base), args.url).model_copy(update={"worker_id": args.worker})
    config.schedule.claim_ttl_seconds = args.claim_ttl
    # Claims are safe when a sixth of the TTL covers a write's time in flight: one request's
    # timeout plus the client's retry budget (docs/decisions/0013). The demo's 30 s timeout
    # and 20 s budget would need a TTL of 300 s; these keep the default TTL of 120 s inside
    # that assumption (10 + 10 <= 120 / 6) while a dead claim still frees in two minutes.
    config.gitlab.timeout_seconds = args.claim_ttl / 12
    config.gitlab.retry_budget_seconds = args.claim_ttl / 12
    config.schedule.janitor_seconds = args.janitor_seconds
    config.schedule.poll_seconds = args.poll_seconds
    # The flaky-test doctor files goals of its own, which the checks do not expect.
    config.roles.flaky.enabled = False
    secrets = Secrets(
        gitlab_token=SecretStr(os.environ["CREWLINE_GITLAB_TOKEN"]),
        gitlab_merge_token=SecretStr(os.environ["CREWLINE_GITLAB_MERGE_TOKEN"]),
    )
    runtime = await build_runtime(config, secrets, notifier=EventLog())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        services = runtime.services
        services.desk = ConsoleDesk.of(services, who="the chaos operator")
        rate = float(os.environ.get("CHAOS_GATE_KILL_RATE", "0"))
        if rate > 0:
            _kill_after_decisions(runtime, rate, random.Random(f"{args.worker}-{os.getpid()}"))
        say("up")
        await _serve(runtime, stop)
        await runtime.engine.drain()
        say("stopped")
        return 0
    finally:
        await runtime.close()


async def _serve(runtime: Runtime, stop: asyncio.Event) -> None:
    """What `crewline worker` runs (bot/serve.py), until SIGTERM."""
    engine, config = runtime.engine, runtime.config
    scheduler = build_scheduler(engine, runtime.client.budget, config.schedule, config.roles.flaky)
    scheduler.start()
    forever = asyncio.create_task(engine.run_forever(config.schedule.poll_seconds))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        forever.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the GitLab simulator's base URL")
    parser.add_argument("--base", required=True, help="directory of SQLite, workspaces, runs")
    parser.add_argument("--worker", required=True, help="worker id, the same on every restart")
    parser.add_argument("--claim-ttl", type=float, default=120.0, help="claim TTL, seconds")
    parser.add_argument("--janitor-seconds", type=float, default=5.0, help="janitor cadence")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="engine poll cadence")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    sys.exit(asyncio.run(work(parser.parse_args())))


if __name__ == "__main__":
    main()
