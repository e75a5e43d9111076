"""Chaos: several crewline hosts, random SIGKILLs, GitLab faults and lost responses, then checks.

    python bench/chaos.py [--workers 4] [--goals 12] [--kills 200] [--fault-rate 0.2]
                          [--lost-rate 0.03] [--gate-kill-rate 0.3] [--seed 1] [--limit 1800]

A simulator runs in this process; ``--workers`` host processes (``bench/chaos_worker.py``),
each with its own worker id, database and workspaces, work ``--goals`` goals filed at
``pm-ready``. About once a second a random host is SIGKILLed (its agent and git children
are left running, as a real kill leaves them) and restarted at once with the same worker id,
until ``--kills`` kills or every goal is done. Only a host that is up (has built its
runtime) is killed, and a kill counts only when the process died of it: under load a host
takes seconds to import, and killing it then would count kills that test nothing. A host
that dies by itself is restarted and reported as a crash (unless it was a gate kill).
Hosts also kill themselves right after writing a gate's decision note with
``--gate-kill-rate``. Meanwhile ``--fault-rate`` of API requests
fail (500, 502, 503, or 429 with Retry-After) or are delayed, and ``--lost-rate`` of writes
are performed by the simulator whose response is then lost (a 502 after the write).
Then the kills stop, the faults are lifted, the hosts finish and stop, and
``bench/chaos_checks.py`` checks GitLab and every host's database. The last line is
``kills K, goals done D/G, duplicates X, double pickups Y, lost Z, crashes C``; exit 0 when
all is well, 1 on any finding, 2 when all is well but fewer kills happened than asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gitlab
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_checks import Findings, check_gitlab, check_hosts
from chaos_goals import chaos_goals
from chaos_host import Host

from bot.demo import PROJECT
from sim.core.app import RunningSim
from sim.core.base import SimConfig
from workflow import default_workflow

WORKER = Path(__file__).resolve().parent / "chaos_worker.py"
CLAIM_TTL = 120.0  # seconds; see bench/chaos_worker.py for why
LOOK_EVERY = 10.0  # seconds between looks at whether every goal is done


@dataclass(frozen=True)
class ChaosPlan:
    workers: int = 4
    goals: int = 12
    kills: int = 200
    fault_rate: float = 0.2
    lost_rate: float = 0.03
    gate_kill_rate: float = 0.3
    seed: int = 1
    limit: float = 1800.0  # seconds for the goals to get done, kills included
    kill_every: tuple[float, float] = (0.5, 1.5)


@dataclass
class ChaosResult:
    plan: ChaosPlan
    kills: int = 0
    gate_kills: int = 0
    skipped: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    t0: float = field(default_factory=time.monotonic)
    states: dict[int, str | None] = field(default_factory=dict)  # as last looked at
    last_move: float = 0.0  # seconds from the start to the last change of any goal's state
    findings: Findings = field(default_factory=Findings)

    def summary(self) -> str:
        f = self.findings
        return (
            f"kills {self.kills}, goals done {f.done}/{f.goals}, duplicates "
            f"{len(f.duplicates)}, double pickups {len(f.double_pickups)}, lost {len(f.lost)}, "
            f"crashes {len(f.crashes)}"
        )


def _root(sim: RunningSim) -> gitlab.Gitlab:
    """The harness's own view, which rides out the storm it made (it retries 5xx and 429)."""
    return gitlab.Gitlab(
        sim.base_url,
        private_token=sim.config.root_token,
        retry_transient_errors=True,
    )


def _faults(sim: RunningSim, plan: ChaosPlan) -> None:
    """Install the storm: errors and latency on the API, lost responses on writes."""
    url = f"{sim.base_url}/api/v4/_sim/faults"
    headers = {"PRIVATE-TOKEN": sim.config.root_token}
    api = "/api/v4/projects/*"
    share = plan.fault_rate / 5
    rules: list[dict[str, object]] = [{"seed": plan.seed}]
    if plan.lost_rate > 0:
        for method in ("POST", "PUT"):
            rules.append(
                {"method": method, "path": api, "status": 502, "rate": plan.lost_rate,
                 "when": "after"}
            )  # fmt: skip
    if share > 0:
        for status in (500, 502, 503):
            rules.append({"path": api, "status": status, "rate": share})
        rules.append({"path": api, "status": 429, "rate": share, "retry_after": 1})
        rules.append({"path": api, "latency_ms": 400, "rate": share})
    for rule in rules:
        answer = requests.post(url, json=rule, headers=headers, timeout=10)
        if answer.status_code != 201:
            raise SystemExit(f"the simulator refused fault rule {rule}: {answer.text}")


def _calm(sim: RunningSim) -> None:
    requests.delete(
        f"{sim.base_url}/api/v4/_sim/faults",
        headers={"PRIVATE-TOKEN": sim.config.root_token},
        timeout=10,
    ).raise_for_status()


def _file_goals(sim: RunningSim, count: int) -> dict[int, str]:
    wf = default_workflow()
    project = _root(sim).projects.get(PROJECT)
    expected = {}
    for goal in chaos_goals(count):
        issue = project.issues.create(
            {"title": goal.title, "description": goal.description,
             "labels": wf.state(wf.entry).label}
        )  # fmt: skip
        expected[int(issue.iid)] = goal.expect_state
    return expected


def _states(sim: RunningSim, iids: list[int]) -> dict[int, str | None]:
    project = _root(sim).projects.get(PROJECT)
    states: dict[int, str | None] = {}
    for iid in iids:
        labels = project.issues.get(iid).labels
        flow = [label for label in labels if label.startswith("workflow::")]
        states[iid] = flow[0].removeprefix("workflow::") if len(flow) == 1 else None
    return states


async def _all_there(sim: RunningSim, expected: dict[int, str], result: ChaosResult) -> bool:
    states = await asyncio.to_thread(_states, sim, list(expected))
    if states != result.states:
        # A run that ends short of its goals was slow if they kept moving, stuck if not.
        if result.states:
            result.last_move = time.monotonic() - result.t0
        result.states = states
    return all(states[iid] == want for iid, want in expected.items())


def _fault_hits(sim: RunningSim) -> dict[str, int]:
    """How many requests the storm hit: failed, lost after the write, only delayed."""
    answer = requests.get(
        f"{sim.base_url}/api/v4/_sim/faults",
        headers={"PRIVATE-TOKEN": sim.config.root_token},
        timeout=10,
    )
    answer.raise_for_status()
    hits = {"faults": 0, "lost responses": 0, "delays": 0}
    for rule in answer.json():
        kind = (
            "lost responses" if rule["when"] == "after"
            else "faults" if rule["status"] is not None
            else "delays"
        )  # fmt: skip
        hits[kind] += int(rule["hits"])
    return hits


def _host(name: str, base: Path, sim: RunningSim, env: dict[str, str]) -> Host:
    argv = [
        sys.executable, str(WORKER), "--url", sim.base_url, "--base", str(base / name),
        "--worker", name, "--claim-ttl", str(CLAIM_TTL),
    ]  # fmt: skip
    return Host(name, argv, base / "logs" / f"{name}.log", env)


async def run_chaos(plan: ChaosPlan, base: Path, *, say: bool = True) -> ChaosResult:
    result = ChaosResult(plan)
    rng = random.Random(plan.seed)
    sim = RunningSim(SimConfig(state_dir=base / "sim", seed="demo")).start()
    hosts: list[Host] = []
    started = time.monotonic()
    try:
        expected = await asyncio.to_thread(_file_goals, sim, plan.goals)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")},
            "CREWLINE_GITLAB_TOKEN": sim.config.bot_token,
            "CREWLINE_GITLAB_MERGE_TOKEN": sim.config.maintainer_token,
            "CHAOS_GATE_KILL_RATE": str(plan.gate_kill_rate),
        }
        hosts = [_host(f"chaos-{n}", base, sim, env) for n in range(1, plan.workers + 1)]
        for host in hosts:
            await host.start()
        await asyncio.to_thread(_faults, sim, plan)
        deadline = started + plan.limit
        said, looked = 0, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(*plan.kill_every))
            for host in hosts:
                await host.ensure_running()
            if result.kills < plan.kills:
                # A host still starting is never picked while another is up: killing it
                # during its imports tests nothing, and skipping the pick would halve the rate.
                victim = rng.choice([host for host in hosts if host.up] or hosts)
                if await victim.kill():
                    result.kills += 1
                    await victim.start()
            if time.monotonic() - looked > LOOK_EVERY:
                looked = time.monotonic()
                if await _all_there(sim, expected, result):
                    break
            if say and result.kills % 25 == 0 and result.kills != said:
                said = result.kills
                done = sum(result.states.get(iid) == want for iid, want in expected.items())
                print(
                    f"  {time.monotonic() - started:.0f} s: {result.kills} kills, "
                    f"{done}/{plan.goals} goals done",
                    flush=True,
                )
        result.hits = await asyncio.to_thread(_fault_hits, sim)
        await asyncio.to_thread(_calm, sim)
        # The storm is over: the hosts finish what is left (a gate kill may still fire).
        while time.monotonic() < deadline and not await _all_there(sim, expected, result):
            for host in hosts:
                await host.ensure_running()
            await asyncio.sleep(1.0)
        for host in hosts:
            await host.stop()
        result.gate_kills = sum(host.gate_kills for host in hosts)
        result.skipped = sum(host.skipped for host in hosts)
        result.seconds = time.monotonic() - started
        result.findings.crashes.extend(c for host in hosts for c in host.crashes)
        await asyncio.to_thread(
            check_gitlab, _root(sim), PROJECT, expected, result.findings,
            workflow=default_workflow(), claim_ttl=CLAIM_TTL,
        )  # fmt: skip
        check_hosts(
            [base / host.name / "crewline.sqlite3" for host in hosts], PROJECT, result.findings
        )
    finally:
        for host in hosts:
            with contextlib.suppress(ProcessLookupError):
                await host.kill_now()
        sim.stop()
    return result


def report(result: ChaosResult) -> str:
    f = result.findings
    hits = ", ".join(f"{n} {kind}" for kind, n in result.hits.items())
    lines = [
        f"{result.plan.workers} hosts, {f.goals} goals, seed {result.plan.seed}, "
        f"{result.seconds:.0f} s, {result.gate_kills} kills right after a decision note, "
        f"{result.skipped} kill picks skipped (host still starting), storm: {hits or 'none'}",
    ]
    for title, items in (
        ("lost", f.lost),
        ("duplicates", f.duplicates),
        ("double pickups", f.double_pickups),
        ("broken audit chains", f.broken_chains),
        ("crashes", f.crashes),
    ):
        lines.extend(f"  {title}: {item}" for item in items)
    if f.lost:
        at_end = Counter(state for state in result.states.values())
        lines.append(
            f"  goals last moved {result.last_move:.0f} s after the start; at the last look: "
            + ", ".join(f"{n} at {state}" for state, n in sorted(at_end.items(), key=str))
        )
    if result.kills < result.plan.kills:
        lines.append(f"  only {result.kills} of the {result.plan.kills} kills asked happened")
    lines.append(result.summary())
    return "\n".join(lines)


def main() -> None:
    defaults = ChaosPlan()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--goals", type=int, default=defaults.goals)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--lost-rate", type=float, default=defaults.lost_rate)
    parser.add_argument("--gate-kill-rate", type=float, default=defaults.gate_kill_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--limit", type=float, default=defaults.limit)
    parser.add_argument("--keep", metavar="DIR", help="keep hosts' data and logs in DIR")
    args = parser.parse_args()
    plan = ChaosPlan(
        workers=args.workers, goals=args.goals, kills=args.kills, fault_rate=args.fault_rate,
        lost_rate=args.lost_rate, gate_kill_rate=args.gate_kill_rate, seed=args.seed,
        limit=args.limit,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="crewline-chaos-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        result = asyncio.run(run_chaos(plan, base))
    print(report(result))
    # 2: all is well, but fewer kills happened than asked, so the run proves less.
    sys.exit(1 if not result.findings.ok else 2 if result.kills < plan.kills else 0)


if __name__ == "__main__":
    main()
