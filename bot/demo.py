"""`crewline demo`: the whole machine, offline, in a temporary directory.

It starts the GitLab simulator with the seeded demo/app project, configures crewline
against it with the built-in DEMO agent (a deterministic program, not an AI), files three
goals, and runs the engine until each goal reaches the state expected of it: one goes
straight through, one fails validation once and converges, one waits for its dependency.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from bot.app import Runtime, build_runtime
from bot.config import CrewlineConfig, Secrets
from bot.console import ConsoleDesk, ConsoleNotifier
from bot.demo_goals import GOALS, DemoGoal
from bot.settings import ScheduleSettings
from forge.labels import sync_labels
from forge.settings import GitLabSettings, ProjectSettings
from forge.types import Issue
from roles.notify import EventLog, Fanout
from roles.settings import AgentSettings, QaSettings, RoleSettings, RolesSettings
from roles.workspace.settings import WorkspaceSettings
from sim.core.app import RunningSim
from sim.core.base import SimConfig
from storage import StorageSettings
from workflow import read_state

PROJECT = "demo/app"
_WIDTH = 140  # the summary table stays readable when the output is piped
VALIDATION = ["python3 -m unittest discover -s tests -t ."]


@dataclass
class GoalResult:
    iid: int
    title: str
    story: str
    state: str
    expected: str
    ok: bool
    states: list[str]
    validations: int
    dev_attempts: int
    pipelines: list[str]  # "#id status" of the MR's pipelines, oldest first
    merge_request: str | None
    waiting: str | None
    seconds: float


def mr_branch(mr: dict[str, Any]) -> str:
    return str(mr.get("branch") or "")


def demo_config(base: Path, gitlab_url: str) -> CrewlineConfig:
    return CrewlineConfig(
        worker_id="demo-host",
        gitlab=GitLabSettings(url=gitlab_url, max_retries=3, retry_budget_seconds=20),
        projects=[ProjectSettings(path=PROJECT, validation=VALIDATION)],
        storage=StorageSettings(path=base / "crewline.sqlite3"),
        agents={"demo": AgentSettings(kind="demo", timeout_seconds=60)},
        roles=RolesSettings(
            agent="demo",
            max_concurrent=4,
            pm=RoleSettings(concurrency=3),
            dev=RoleSettings(concurrency=2, max_attempts=3),
            review=RoleSettings(concurrency=2),
            qa=QaSettings(concurrency=4),
            pipeline_poll_seconds=0.2,
            pipeline_timeout_seconds=60,
        ),
        schedule=ScheduleSettings(claim_ttl_seconds=60),
        workspaces=WorkspaceSettings(root=base / "workspaces"),
        runs_dir=base / "runs",
    )


async def run_demo(*, interactive: bool, as_json: bool, limit_seconds: float = 90.0) -> int:
    console = Console(quiet=as_json, highlight=False, width=_WIDTH)
    with tempfile.TemporaryDirectory(prefix="crewline-demo-") as tmp:
        base = Path(tmp)
        sim = RunningSim(SimConfig(state_dir=base / "sim", seed="demo")).start()
        try:
            console.print(f"GitLab simulator at {sim.base_url} (project {PROJECT})", markup=False)
            # The bot is a Developer; the maintainer's token is the merge identity, used only
            # after the (console) approval.
            secrets = Secrets(
                gitlab_token=SecretStr(sim.config.bot_token),
                gitlab_merge_token=SecretStr(sim.config.maintainer_token),
            )
            log = EventLog()
            runtime = await build_runtime(
                demo_config(base, sim.base_url),
                secrets,
                notifier=Fanout(ConsoleNotifier(console), log),
            )
            try:
                desk = ConsoleDesk.of(
                    runtime.services,
                    who="the demo operator",
                    console=console,
                    interactive=interactive,
                )
                runtime.services.desk = desk
                results = await _drive(runtime, console, limit_seconds, desk)
            finally:
                await runtime.close()
        finally:
            sim.stop()
    ok = all(result.ok for result in results)
    if as_json:
        print(json.dumps({"ok": ok, "goals": [asdict(r) for r in results]}, indent=2))
    else:
        _print_summary(console, results, ok)
    return 0 if ok else 1


async def _drive(
    runtime: Runtime, console: Console, limit_seconds: float, desk: ConsoleDesk
) -> list[GoalResult]:
    gateway, wf = runtime.services.gateway, runtime.services.workflow
    synced = await sync_labels(gateway, PROJECT)
    console.print(f"labels: {len(synced.created)} created, {len(synced.updated)} updated")
    started = time.monotonic()
    issues: list[Issue] = []
    for goal in GOALS:
        issue = await gateway.create_issue(
            PROJECT, goal.title, goal.description, [wf.state(wf.entry).label]
        )
        console.print(f"filed {issue.ref}: {goal.title} ({goal.story})", markup=False)
        issues.append(issue)
    engine = runtime.engine
    deadline = started + limit_seconds
    while time.monotonic() < deadline:
        await engine.tick()
        if not engine.busy and await _all_settled(runtime, issues):
            break
        if desk.input_closed and not engine.busy:
            break  # nobody is left to approve what waits at a gate
        await asyncio.sleep(0.2)
    await engine.drain()
    return [await _result(runtime, issue, goal) for issue, goal in zip(issues, GOALS, strict=True)]


async def _state(runtime: Runtime, issue: Issue) -> str:
    fresh = await runtime.services.gateway.get_issue(issue.project, issue.iid)
    state = read_state(runtime.services.workflow, fresh.labels).state
    return state.name if state else "(none)"


async def _all_settled(runtime: Runtime, issues: list[Issue]) -> bool:
    for issue, goal in zip(issues, GOALS, strict=True):
        if await _state(runtime, issue) != goal.expect_state:
            return False
    return True


async def _result(runtime: Runtime, issue: Issue, goal: DemoGoal) -> GoalResult:
    services = runtime.services
    wf = services.workflow
    events = await services.gateway.label_events(issue.project, issue.iid)
    visited = [
        seen.name
        for event in events
        if event.action == "add" and (seen := wf.state_for_label(event.label)) is not None
    ]
    run = await services.storage.runs.latest(issue.project, issue.iid, "dev")
    steps: dict[str, Any] = await services.storage.runs.steps(run.id) if run else {}
    validations = sum(1 for step in steps if step.startswith("validate-"))
    mr = steps.get("mr")
    pipelines: list[str] = []
    if isinstance(mr, dict):
        listed = await services.gateway.merges.pipelines(issue.project, ref=mr_branch(mr))
        pipelines = [f"#{p.id} {p.status}" for p in reversed(listed)]
    state = await _state(runtime, issue)
    waiting = runtime.engine.waiting.get((issue.project, issue.iid))
    attempts = run.attempt if run else 0
    ok = (
        state == goal.expect_state
        and validations == goal.expect_validations
        and attempts == goal.expect_dev_attempts
    )
    times = [datetime.fromisoformat(e.created_at.replace("Z", "+00:00")) for e in events]
    return GoalResult(
        iid=issue.iid,
        title=goal.title,
        story=goal.story,
        state=state,
        expected=goal.expect_state,
        ok=ok,
        states=visited,
        validations=validations,
        dev_attempts=attempts,
        pipelines=pipelines,
        merge_request=mr["web_url"] if isinstance(mr, dict) else None,
        waiting=waiting.reason if waiting else None,
        seconds=round((max(times) - min(times)).total_seconds(), 1) if times else 0.0,
    )


def _print_summary(console: Console, results: list[GoalResult], ok: bool) -> None:
    table = Table(title="crewline demo")
    columns = (
        "issue", "goal", "states visited", "validations", "dev runs", "MR", "pipelines",
        "seconds", "ends at",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)
    for r in results:
        end = r.state if r.ok else f"{r.state} (expected {r.expected})"
        if r.waiting:
            end += f": {r.waiting}"
        table.add_row(
            f"#{r.iid}",
            f"{r.title}\n({r.story})",
            " > ".join(r.states),
            str(r.validations),
            str(r.dev_attempts),
            f"!{r.merge_request.rsplit('/', 1)[-1]}" if r.merge_request else "-",
            "\n".join(r.pipelines) or "-",
            f"{r.seconds:.1f}",
            end,
        )
    console.print(table)
    console.print(
        "[green]every goal reached the state expected of it[/green]"
        if ok
        else "[red]some goals did not reach the state expected of them[/red]"
    )
