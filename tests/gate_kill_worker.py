"""A crewline process that approves one plan and is SIGKILLed by itself right after the
decision note, at the transition: what a kill during the transition's retry wait leaves
behind (the note in GitLab, the gate lease live in this worker's SQLite).

Run as ``python tests/gate_kill_worker.py --url SIM --base DIR --worker ID --iid N
--revision PLAN_NOTE_ID`` with the bot's token in ``CREWLINE_GITLAB_TOKEN``. Prints ``up``
once the runtime is built; it never exits by itself (the kill ends it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build_runtime
from bot.config import Secrets
from bot.demo import demo_config
from roles.gates.decide import decide_plan
from roles.notify import EventLog
from tests.support.engine import PROJECT


async def work(args: argparse.Namespace) -> None:
    config = demo_config(Path(args.base), args.url).model_copy(update={"worker_id": args.worker})
    runtime = await build_runtime(config, Secrets(), notifier=EventLog())
    print("up", flush=True)

    async def killed(*_: Any, **__: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    runtime.services.gateway.transition = killed  # type: ignore[method-assign]
    await decide_plan(
        runtime.services.gateway, runtime.storage.leases, PROJECT, args.iid,
        revision=args.revision, approve=True, who="ada", via="the killed process",
        worker=args.worker,
    )  # fmt: skip
    print("survived", flush=True)  # never: the transition kills the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("url", "base", "worker", "revision"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--iid", type=int, required=True)
    asyncio.run(work(parser.parse_args()))


if __name__ == "__main__":
    main()
