"""Capacity of a fleet: 1, 2, 4 and 8 `crewline worker` processes against one simulator.

Run: ``.venv/bin/python bench/fleet.py [--issues 200] [--fleets 1 2 4 8] [--through dev-ready]
[--repeat 3]``

For each fleet size it starts a fresh simulator (seeded like the demo, in this process), files
``--issues`` goals at pm-ready as a person would, and starts that many ``crewline worker
--auto-approve-plans`` processes, each a host of its own (own worker id, database and
workspaces) under the one bot user, with the demo agent (instant and deterministic). It waits
until every goal has reached ``--through`` (dev-ready: planned and approved, the developer role
switched off; review-ready: implemented too, with a merge request, review switched off), then
stops the workers with Ctrl-C and prints, per fleet size (each run, then the median of the
``--repeat`` runs, figure by figure, with the spread of calls per issue):

- issues per minute, from the workers' start to the last goal arriving;
- GitLab calls: the bot user's HTTP requests as the simulator counted them (what GitLab's rate
  limit counts), per minute and per issue;
- CPU per issue: user+system seconds of the worker processes and everything they ran (git,
  validation), from the kernel's accounting of reaped children.

The simulator runs in this process and its CPU is not counted, but it shares the machine:
on a small machine it, not crewline, may be what limits the larger fleets. Print the machine's
cores and load next to the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gitlab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.core.app import RunningSim
from sim.core.base import SimConfig
from workflow import default_workflow

PROJECT = "demo/app"

CONFIG = """\
worker_id = "fleet-{index}"
runs_dir = "runs"

[gitlab]
url = "{url}"

[[projects]]
path = "{project}"

[storage]
path = "state/crewline.sqlite3"

[workspaces]
root = "workspaces"

[agents.demo]
kind = "demo"

[roles]
agent = "demo"
max_concurrent = 4

[roles.pm]
concurrency = 2

[roles.dev]
enabled = {dev}
concurrency = 2

[roles.review]
enabled = false

[schedule]
poll_seconds = 2
janitor_seconds = 30
claim_ttl_seconds = 60

[webhook]
enabled = false
"""


@dataclass(frozen=True)
class FleetFigures:
    workers: int
    issues: int
    seconds: float
    calls: int
    cpu_seconds: float

    def row(self, label: str = "") -> str:
        minutes = self.seconds / 60
        return (
            f"{label:>6} {self.workers:>7} {self.issues:>6} {self.seconds:>8.1f} "
            f"{self.issues / minutes:>10.1f} {self.calls / minutes:>11.0f} "
            f"{self.calls / self.issues:>10.1f} {self.cpu_seconds / self.issues:>10.2f}"
        )


HEADER = (
    "   run workers issues  seconds issues/min  calls/min  calls/issue  CPU-s/issue\n"
    "------ ------- ------ -------- ---------- ---------- ----------- -----------"
)


def median_of(runs: list[FleetFigures]) -> FleetFigures:
    """Each figure's median over the runs of one fleet size (not the median run's figures)."""
    return FleetFigures(
        workers=runs[0].workers,
        issues=runs[0].issues,
        seconds=statistics.median(run.seconds for run in runs),
        calls=round(statistics.median(run.calls for run in runs)),
        cpu_seconds=statistics.median(run.cpu_seconds for run in runs),
    )


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fleet(base: Path, workers: int, issues: int, through: str, timeout: float) -> FleetFigures:
    wf = default_workflow()
    sim = RunningSim(SimConfig(state_dir=base / "sim", seed="demo")).start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        root = gitlab.Gitlab(sim.base_url, private_token=sim.config.root_token)
        project = root.projects.get(PROJECT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
        env["CREWLINE_GITLAB_TOKEN"] = sim.config.bot_token
        configs = []
        for index in range(workers):
            home = base / f"worker-{index}"
            home.mkdir()
            config = home / "crewline.toml"
            config.write_text(
                CONFIG.format(
                    index=index,
                    url=sim.base_url,
                    project=PROJECT,
                    dev=str(through == "review-ready").lower(),
                ),
                encoding="utf-8",
            )
            configs.append(config)
        cli = [sys.executable, "-m", "bot.cli"]
        subprocess.run(
            [*cli, "labels", "sync", "--config", str(configs[0])],
            cwd=configs[0].parent, env=env, check=True, capture_output=True,
        )  # fmt: skip
        for n in range(issues):
            project.issues.create(
                {
                    "title": f"Goal {n}",
                    "description": f"Add a function that returns {n}.",
                    "labels": wf.state("pm-ready").label,
                }
            )
        calls_before = _bot_calls(sim)
        cpu_before = children_cpu()
        started = time.monotonic()
        for config in configs:
            processes.append(
                subprocess.Popen(
                    [*cli, "worker", "--auto-approve-plans", "--config", str(config)],
                    cwd=config.parent,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        label = wf.state(through).label
        arrived = 0
        while arrived < issues:
            if time.monotonic() - started > timeout:
                raise SystemExit(f"{workers} workers: only {arrived} of {issues} at {through}")
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"a worker exited early: {[p.returncode for p in processes]}")
            time.sleep(1)
            arrived = len(
                project.issues.list(labels=label, state="opened", get_all=True, per_page=100)
            )
        seconds = time.monotonic() - started
        calls = _bot_calls(sim) - calls_before
        _stop(processes)
        cpu = children_cpu() - cpu_before
        return FleetFigures(workers, issues, seconds, calls, cpu)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        sim.stop()


def _bot_calls(sim: RunningSim) -> int:
    """The bot user's API requests since the simulator started."""
    assert sim.sim is not None
    with sqlite3.connect(sim.config.state_dir / "sim.sqlite3") as conn:
        row = conn.execute("SELECT id FROM users WHERE username = 'crewline-bot'").fetchone()
    return int(sim.sim.rate.totals[int(row[0])])


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    # SIGTERM, as a supervisor stops a host: a SIGINT would be ignored when the bench itself
    # was started in the background by a script (an ignored signal stays ignored across exec).
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--issues", type=int, default=200, help="goals filed per fleet size")
    parser.add_argument("--fleets", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--through", choices=["dev-ready", "review-ready"], default="dev-ready",
        help="where the goals stop: planned and approved, or implemented with an MR too",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per fleet size")
    parser.add_argument("--repeat", type=int, default=1, help="runs per fleet size (median)")
    args = parser.parse_args(argv)
    if args.issues < 1 or args.repeat < 1 or any(n < 1 for n in args.fleets):
        parser.error("need --issues >= 1, --repeat >= 1 and fleet sizes >= 1")
    print(
        f"fleet bench: {args.issues} goals from pm-ready to {args.through} per fleet size, "
        f"demo agent; machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start"
    )
    print(HEADER, flush=True)
    for workers in args.fleets:
        runs: list[FleetFigures] = []
        for n in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="crewline-fleet-") as temp:
                runs.append(run_fleet(Path(temp), workers, args.issues, args.through, args.timeout))
            print(runs[-1].row(f"#{n + 1}"), flush=True)
        if args.repeat > 1:
            per_issue = [run.calls / run.issues for run in runs]
            print(
                f"{median_of(runs).row('median')}   "
                f"(calls/issue {min(per_issue):.1f}-{max(per_issue):.1f})",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
