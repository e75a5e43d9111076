"""`crewline demo`: the whole machine, offline, in a temporary directory.

It starts the GitLab simulator with the seeded demo/app project, configures crewline
against it with the built-in DEMO agent (a deterministic program, not an AI), files four
goals, and runs the engine until each goal reaches the state expected of it: one goes
straight through, one fails validation once and converges, one waits for its dependency,
one passes locally and fails in CI. Then the fifth goal (bot/demo_flaky.py): a flaky test
committed to main is detected from its CI history, reproduced, diagnosed, fixed and
validated N/N by the flaky-test doctor, and left at the merge gate for a human.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
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
from bot.demo_flaky import DOCTOR, FlakyResult, flaky_result, flaky_settled, history_in_thread
from bot.demo_goals import GOALS, DemoGoal
from bot.settings import ScheduleSettings
from forge.labels import sync_labels
from forge.settings import GitLabSettings, ProjectSettings
from forge.types import Issue
from roles.flaky.doctor import Doctor
from roles.flaky.runs import JobRunner
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
            flaky=DOCTOR,
        ),
        schedule=ScheduleSettings(claim_ttl_seconds=60),
        workspaces=WorkspaceSettings(root=base / "workspaces"),
        runs_dir=base / "runs",
    )


async def run_demo(*, interactive: bool, as_json: bool, limit_seconds: float = 900.0) -> int:
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
                    humans_merge=DOCTOR.label,
                )
                runtime.services.desk = desk

                async def history() -> list[str]:
                    return await history_in_thread(
                        sim.base_url, sim.config.maintainer_token, PROJECT
                    )

                results, flaky = await _drive(runtime, console, limit_seconds, desk, history)
            finally:
                await runtime.close()
        finally:
            sim.stop()
    ok = all(result.ok for result in results) and flaky.ok
    if as_json:
        goals = [asdict(r) for r in results]
        print(json.dumps({"ok": ok, "goals": goals, "flaky": asdict(flaky)}, indent=2))
    else:
        _print_summary(console, results, flaky, ok)
    return 0 if ok else 1


async def _drive(
    runtime: Runtime,
    console: Console,
    limit_seconds: float,
    desk: ConsoleDesk,
    history: Callable[[], Awaitable[list[str]]],
) -> tuple[list[GoalResult], FlakyResult]:
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
    gateway = runtime.services.gateway
    runner = JobRunner(gateway.ci, gateway.merges, junit_path=DOCTOR.junit_path, poll=0.1)
    doctor = Doctor(runtime.services, DOCTOR, runner)
    flaky = _FlakyPhase(console, history, doctor)
    deadline = started + limit_seconds
    while time.monotonic() < deadline:
        await engine.tick()
        goals_done = not engine.busy and await _all_settled(runtime, issues)
        if goals_done:
            # Settled is judged between passes: go() would start the next pass at once.
            if flaky.idle and await flaky_settled(runtime.services, PROJECT):
                break
            flaky.go()
        if desk.input_closed and not engine.busy:
            break  # nobody is left to approve what waits at a gate
        await engine.between_passes(busy=1.0, idle=0.2)
    await flaky.stop()
    await engine.drain()
    results = [
        await _result(runtime, issue, goal) for issue, goal in zip(issues, GOALS, strict=True)
    ]
    return results, await flaky_result(runtime.services, PROJECT, flaky.history)


class _FlakyPhase:
    """The fifth goal in the background of the engine's loop: the history once, then the
    doctor's passes one after another (each reproduction or validation takes a while)."""

    def __init__(
        self, console: Console, history: Callable[[], Awaitable[list[str]]], doctor: Doctor
    ) -> None:
        self.console, self.make_history, self.doctor = console, history, doctor
        self.history: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._task is not None and self._task.done() and bool(self.history)

    def go(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:  # said, then tried again by the next pass
                self.console.print(f"flaky goal: {error!r}", style="red", markup=False)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._next())

    async def _next(self) -> None:
        if not self.history:
            self.console.print("flaky goal: a teammate commits tests/test_sampling.py to main")
            self.history = await self.make_history()
            self.console.print(f"flaky goal: main's pipelines {', '.join(self.history)}")
            return
        done = await self.doctor.run_pass(PROJECT)
        moved = {
            "filed": done.filed, "reproduced": done.reproduced, "diagnosed": done.diagnosed,
            "validated": done.validated,
        }  # fmt: skip
        if any(moved.values()):
            shown = ", ".join(f"{k} {v}" for k, v in moved.items() if v)
            self.console.print(f"flaky doctor: {shown}", markup=False)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task


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


def _print_summary(
    console: Console, results: list[GoalResult], flaky: FlakyResult, ok: bool
) -> None:
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
    end = f"{flaky.state}, flaky::{flaky.flaky_state}"
    p = "?" if flaky.p is None else f"{flaky.p:.2f}"
    console.print(
        f"flaky goal #{flaky.iid} {flaky.test}: history {' '.join(flaky.history_pipelines)}; "
        f"reproduced p = {p} ({flaky.failures}/{len(flaky.reproduce_runs)} runs failed); "
        f"cause {flaky.cause or '?'}; validated {len(flaky.validation_runs)} runs of "
        f"N = {flaky.validate_n}; {flaky.ci_runs} CI runs, {flaky.ci_minutes:.2f} CI minutes; "
        + (f"ends at {end}" if flaky.ok else f"ends at {end} (expected {flaky.expected})"),
        markup=False,
    )
    console.print(
        "[green]every goal reached the state expected of it[/green]"
        if ok
        else "[red]some goals did not reach the state expected of them[/red]"
    )
