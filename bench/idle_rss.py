"""Idle memory of `crewline run`: the median resident set size (RSS) of an idle host.

Run: ``.venv/bin/python bench/idle_rss.py [--reps 5] [--idle 5] [--no-webhooks]``

Each repetition starts the simulator (seeded like the demo, in this process), writes a
crewline.toml with Discord off and webhooks on (off with ``--no-webhooks``: a host that
serves no listener, which then never imports aiohttp), starts ``python -m bot.cli run`` as a
subprocess, waits until it is working on the project, lets it idle ``--idle`` seconds (the
poll and the janitor run meanwhile: there is no work), reads its RSS from /proc five times a
second apart and keeps the largest, then stops it with Ctrl-C. Prints each repetition and the
median. Set PYTHONPATH to a checkout of older code to measure that code with the same bench.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sim.core.app import running_sim
from sim.core.base import SimConfig

CONFIG = """\
worker_id = "idle-host"
runs_dir = "runs"

[gitlab]
url = "{url}"

[[projects]]
path = "demo/app"

[storage]
path = "state/crewline.sqlite3"

[workspaces]
root = "workspaces"

[agents.demo]
kind = "demo"

[roles]
agent = "demo"

[schedule]
poll_seconds = 2
janitor_seconds = 2

[webhook]
enabled = {webhooks}
port = 0

[discord]
enabled = false
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def one_run(directory: Path, idle: float, webhooks: bool = True) -> int:
    """The idle RSS of one `crewline run`, in KiB."""
    with running_sim(SimConfig(state_dir=directory / "sim", seed="demo")) as sim:
        config = directory / "crewline.toml"
        text = CONFIG.format(url=sim.base_url, webhooks=str(webhooks).lower())
        config.write_text(text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
        env |= {
            "CREWLINE_GITLAB_TOKEN": "sim-bot-token",
            "CREWLINE_WEBHOOK_SECRET": "an-idle-bench-secret",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--config", str(config)],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
        try:
            _wait_for(lines, "working on demo/app", process, timeout=120)
            time.sleep(idle)
            samples = []
            for _ in range(5):
                samples.append(rss_kib(process.pid))
                time.sleep(1)
            return max(samples)
        finally:
            process.send_signal(signal.SIGTERM)  # SIGINT may be ignored: see bench/fleet.py
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)


def _wait_for(
    lines: queue.Queue[str], text: str, process: subprocess.Popen[str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if text in line:
            return
    raise SystemExit(f"crewline run never reported {text!r}; its output:\n{''.join(seen)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=5, help="repetitions")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring")
    parser.add_argument("--no-webhooks", action="store_true", help="a host with webhooks off")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.idle < 0:
        parser.error("need --reps >= 1 and --idle >= 0")
    figures = []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="crewline-idle-") as temp:
            kib = one_run(Path(temp), args.idle, webhooks=not args.no_webhooks)
        figures.append(kib / 1024)
        print(f"rep {rep + 1}: idle RSS {kib / 1024:.1f} MB", flush=True)
    webhooks = "off" if args.no_webhooks else "on"
    print(
        f"crewline run, Discord off, webhooks {webhooks}: median idle RSS "
        f"{statistics.median(figures):.1f} MB over {args.reps} runs (MB = 2**20 bytes; "
        "goal <= 60)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
