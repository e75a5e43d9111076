"""A crewline worker process for the SIGKILL crash test: the demo runtime against a running
simulator, resuming whatever an earlier (killed) process of the same worker left, then
ticking until one issue reaches merge-ready (planned, implemented, reviewed and QA-passed)
with nothing left running.

Run as ``python tests/engine_crash_worker.py --url SIM --base DIR --worker ID --iid N`` with
the bot's token in ``CREWLINE_GITLAB_TOKEN``. Every line on stdout is flushed at once, so the
test reads what happened up to the moment it killed the process:

    up                      the runtime is built (storage open, labels synced)
    resumed <n>             runs of this worker taken back from the database
    step <name>             a run recorded a checkpoint (agent-plan, implement, mr...)
    state <name>            the issue's workflow state changed
    janitor ...             what a janitor pass re-queued or failed
    done                    the issue is at merge-ready and no run is in flight

Exit 0 when done, 1 when the issue did not get there within ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bot.app import Runtime, build_runtime
from bot.config import Secrets
from bot.console import ConsoleDesk
from bot.demo import demo_config
from forge.labels import sync_labels
from roles.engine.janitor import sweep
from roles.notify import EventLog
from tests.support.engine import PROJECT, state_of

TARGET = "merge-ready"  # where a human's merge approval is awaited


def say(line: str) -> None:
    print(line, flush=True)


async def work(args: argparse.Namespace) -> int:
    config = demo_config(Path(args.base), args.url).model_copy(update={"worker_id": args.worker})
    runtime = await build_runtime(config, Secrets(), notifier=EventLog())
    try:
        services = runtime.services
        services.desk = ConsoleDesk.of(services, who="a tester")
        await sync_labels(services.gateway, PROJECT)

        async def progress(step: str) -> None:
            say(f"step {step}")

        services.after_step = progress
        say("up")
        say(f"resumed {await runtime.engine.resume()}")
        return await _drive(runtime, args.iid, time.monotonic() + args.limit)
    finally:
        await runtime.close()


async def _drive(runtime: Runtime, iid: int, deadline: float) -> int:
    """Tick until the issue is at merge-ready with nothing in flight, saying each state.
    The janitor sweeps now and then, as `crewline worker`'s scheduler has it do."""
    seen: str | None = None
    engine = runtime.engine
    sweep_every = runtime.config.schedule.janitor_seconds
    next_sweep = time.monotonic() + sweep_every
    while True:
        if time.monotonic() >= next_sweep:
            report = await sweep(runtime.services, busy=engine.inflight_keys())
            say(f"janitor requeued={report.requeued} failed={report.failed}")
            next_sweep = time.monotonic() + sweep_every
        await engine.tick()
        busy = engine.busy  # read before the state: a run may finish in between
        state = await state_of(runtime, iid)
        if state != seen:
            seen = state
            say(f"state {state}")
        if state == TARGET and not busy:
            say("done")
            return 0
        if time.monotonic() > deadline:
            say(f"gave up at {state}")
            return 1
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the GitLab simulator's base URL")
    parser.add_argument("--base", required=True, help="directory of SQLite, workspaces, runs")
    parser.add_argument("--worker", required=True, help="worker id, the same on every restart")
    parser.add_argument("--iid", type=int, required=True, help="the issue to drive")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before giving up")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    sys.exit(asyncio.run(work(parser.parse_args())))


if __name__ == "__main__":
    main()
