"""A crewline process that posts one keyed note from a stale view of the issue's notes and
is SIGKILLed by itself right after GitLab answered the post, before its copy check: what a
host killed in that gap leaves behind (its copy in GitLab, the check owed in its SQLite).

Run as ``python tests/note_kill_worker.py --url SIM --base DIR --worker ID --iid N --key KEY
--stale-before NOTE_ID`` with the bot's token in ``CREWLINE_GITLAB_TOKEN``. It sees only the
notes below NOTE_ID, as a host that read the issue just before another host posted the same
key. Prints ``up`` once the runtime is built; it never exits by itself (the kill ends it).
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
from roles.notify import EventLog
from tests.support.engine import PROJECT


async def work(args: argparse.Namespace) -> None:
    config = demo_config(Path(args.base), args.url).model_copy(update={"worker_id": args.worker})
    runtime = await build_runtime(config, Secrets(), notifier=EventLog())
    gateway = runtime.services.gateway
    stale = [note for note in await gateway.notes(PROJECT, args.iid) if note.id < args.stale_before]
    print("up", flush=True)
    post = gateway.post_note

    async def posted_then_killed(*posted: Any, **options: Any) -> Any:
        await post(*posted, **options)
        os.kill(os.getpid(), signal.SIGKILL)

    gateway.post_note = posted_then_killed  # type: ignore[method-assign]
    await gateway.upsert_note(
        PROJECT, args.iid, args.key, "Decided (the killed host).", known=stale
    )
    print("survived", flush=True)  # never: the post kills the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("url", "base", "worker", "key"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--iid", type=int, required=True)
    parser.add_argument("--stale-before", type=int, required=True)
    asyncio.run(work(parser.parse_args()))


if __name__ == "__main__":
    main()
