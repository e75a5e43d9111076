"""One goal from pm-ready to done, as a host runs it: GitLab calls, crewline's CPU, and the
time from an issue becoming ready to its claim. Used by ``bench/api_calls.py``.

The simulator runs as its own process (``crewline sim serve``). The CPU figure is this
process's user+system time from the goal's filing to done, less what the harness itself
spends in that window (filing the goal, the rare look at whether it is done: measured on the
thread that makes those calls and subtracted); the goal's end is seen through the gateway's
``moved`` hook, not by polling GitLab. The children crewline starts meanwhile (git, the
sandbox, the demo agent's CLI) are reported apart, as ``children_cpu_seconds``: the
simulator is a child too but is not reaped before the figure is taken, so it is not in it. The host runs
``Engine.run_forever`` with the given poll; with ``webhooks`` a project hook delivers issue,
note, MR, pipeline and emoji events to a real receiver routed as ``crewline run`` routes
them. The goal is filed by another user (the sim's root), so pm-ready arrives as news; the
gates are decided by the console desk of the same process (the demo's operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import gitlab
import requests
from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import Secrets
from bot.console import ConsoleDesk
from bot.demo import PROJECT, demo_config
from bot.demo_goals import GOALS
from bot.serve import route_event
from forge.labels import sync_labels
from forge.types import Issue
from forge.webhooks import WebhookReceiver, WebhookSettings
from forge.webhooks.events import IssueEvent, WebhookEvent
from roles.notify import EventLog

ROOT, BOT, MAINTAINER, SECRET = "sim-root-token", "sim-bot-token", "sim-maintainer-token", "s3cret"


@dataclass
class Lifecycle:
    calls: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # crewline's process, the harness's own calls taken out
    children_cpu_seconds: float = 0.0  # git, the sandbox and the agent CLI it ran meanwhile
    to_claim: dict[str, float] = field(default_factory=dict)  # ready label -> seconds
    # Where the time to a claim went, per ready label: waiting for the engine to look (the
    # event's queue and wake), the role's admission, the claim's own calls.
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    carried: list[str] = field(default_factory=list)  # roles claimed by a carry-over
    start_calls: int = 0  # the host's start before the goal: its first full listing
    http_requests: int = 0  # HTTP answers in the lifecycle (a list's pages each count)
    # With ``count_plumbing`` (bench/cpu_floor.py): the programs started, by name, and the
    # trips to aiosqlite's thread, in the same window as the CPU figure.
    launches: dict[str, int] = field(default_factory=dict)
    sqlite_trips: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sim_process(state_dir: Path) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "bot.cli", "sim", "serve", "--port", str(port)]
    command += ["--state-dir", str(state_dir), "--seed", "demo"]
    root = Path(__file__).resolve().parent.parent
    # Its own process group: the runner's jobs and git processes it started are stopped with
    # it, before the caller removes the directory they write in.
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/api/v4/version", timeout=1).status_code < 500:
                    break
            assert process.poll() is None, "the simulator did not start"
            assert time.monotonic() < deadline, "the simulator did not answer"
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what did not stop on SIGTERM


def calls_since(db: Path, after: int) -> tuple[int, Counter[str]]:
    """GitLab calls recorded in the audit trail after row ``after``: the last row id, and
    the calls per operation (a row of reads stands for ``count`` calls; rows that are not
    GitLab calls, such as a desk decision, are skipped)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, what, count FROM audit WHERE id > ?", (after,)).fetchall()
    last = max((row[0] for row in rows), default=after)
    counted = Counter[str]()
    for _, what, count in rows:
        if str(what).startswith("gitlab."):
            counted[str(what)] += int(count)
    return last, counted


async def one_lifecycle(
    base: Path, *, webhooks: bool, poll: float, limit: float = 180, count_plumbing: bool = False
) -> Lifecycle:
    with sim_process(base / "sim") as url:
        config = demo_config(base, url)
        secrets = Secrets(gitlab_token=SecretStr(BOT), gitlab_merge_token=SecretStr(MAINTAINER))
        runtime = await build_runtime(config, secrets, notifier=EventLog())
        plumbing = _Plumbing() if count_plumbing else None
        try:
            return await _measure(
                runtime, url, config.storage.path, webhooks, poll, limit, plumbing
            )
        finally:
            await runtime.close()


class _Plumbing:
    """Counts, while on, every program this process starts (asyncio's subprocesses are
    ``Popen`` too) and every trip to aiosqlite's thread: wrappers a bench may install, the
    product never does."""

    def __init__(self) -> None:
        self.launches: Counter[str] = Counter()
        self.trips = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        popen_init, execute = subprocess.Popen.__init__, aiosqlite.Connection._execute

        def counted_init(popen: Any, args: Any, *rest: Any, **options: Any) -> None:
            program = args[0] if isinstance(args, list | tuple) else args
            self.launches[Path(str(program)).name] += 1
            popen_init(popen, args, *rest, **options)

        async def counted_execute(connection: Any, fn: Any, *rest: Any, **options: Any) -> Any:
            self.trips += 1
            return await execute(connection, fn, *rest, **options)  # type: ignore[no-untyped-call]

        subprocess.Popen.__init__ = counted_init  # type: ignore[method-assign, assignment]
        aiosqlite.Connection._execute = counted_execute  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
            aiosqlite.Connection._execute = execute  # type: ignore[method-assign]


async def _measure(
    runtime: Runtime,
    url: str,
    db: Path,
    webhooks: bool,
    poll: float,
    limit: float,
    plumbing: _Plumbing | None,
) -> Lifecycle:
    services = runtime.services
    services.desk = ConsoleDesk.of(services, who="the bench operator")
    await sync_labels(services.gateway, PROJECT)
    await services.fleet.ensure()  # as `crewline run` does at start: the control issue
    engine = runtime.engine
    ready_labels = {services.workflow.ready_state(name).label for name in engine.roles}
    became_ready: dict[str, float] = {}
    result = Lifecycle()

    def ready_now(labels: tuple[str, ...] | list[str]) -> None:
        for label in ready_labels & set(labels):
            became_ready.setdefault(label, time.monotonic())

    services.gateway.moved.append(lambda issue: ready_now(issue.labels))
    finished = asyncio.Event()
    goal_iid = 0  # set once the goal is filed

    def ended(issue: Issue) -> None:
        if issue.iid == goal_iid and _END_LABELS & set(issue.labels):
            finished.set()

    services.gateway.moved.append(ended)
    harness = _HarnessCpu()
    claim, carry = services.claims.claim, services.claims.carry
    admitted: dict[str, tuple[float, float]] = {}  # ready label -> admission began, ended

    def timed_admit(role: Any) -> None:
        admit = role.admit

        async def admit_timed(services: Any, issue: Issue) -> Any:
            began = time.monotonic()
            answer = await admit(services, issue)
            label = services.workflow.ready_state(role.name).label
            admitted.setdefault(label, (began, time.monotonic()))
            return answer

        role.admit = admit_timed

    for role in engine.roles.values():
        timed_admit(role)

    async def timed_claim(issue: Issue, role: str, run: str):  # type: ignore[no-untyped-def]
        began = time.monotonic()
        won = await claim(issue, role, run)
        label = services.workflow.ready_state(role).label
        if won is not None and label in became_ready and label not in result.to_claim:
            now = time.monotonic()
            result.to_claim[label] = now - became_ready[label]
            looked, admission_ended = admitted.get(label, (began, began))
            result.parts[label] = {
                "to look": looked - became_ready[label],
                "admission": admission_ended - looked,
                "claim calls": now - began,
            }
        return won

    async def counted_carry(held, issue, role, run):  # type: ignore[no-untyped-def]
        won = await carry(held, issue, role, run)
        if won is not None:
            result.carried.append(role)
        return won

    services.claims.claim = timed_claim  # type: ignore[method-assign]
    services.claims.carry = counted_carry  # type: ignore[method-assign]
    receiver: WebhookReceiver | None = None
    if webhooks:

        async def on_event(event: WebhookEvent) -> None:
            if isinstance(event, IssueEvent):
                ready_now(event.labels)
            route_event(engine, None, event)  # as `crewline run` routes it (no Discord)

        receiver = WebhookReceiver(SecretStr(SECRET), on_event, WebhookSettings(port=0))
        hook_url = f"{await receiver.start()}{receiver.settings.path}"
        maintainer = gitlab.Gitlab(url, private_token=MAINTAINER)
        await asyncio.to_thread(
            maintainer.projects.get(PROJECT).hooks.create,
            {
                "url": hook_url,
                "token": SECRET,
                **{kind: True for kind in _HOOK_EVENTS},
            },
        )
    await runtime.storage.audit.flush_reads()
    started, _ = calls_since(db, 0)
    goal, root = GOALS[0], gitlab.Gitlab(url, private_token=ROOT)
    root_project = root.projects.get(PROJECT, lazy=True)
    # The host starts first and makes its first full pass (the project's whole listing,
    # paid once per process and every 10 minutes, not per goal): those calls are counted
    # apart, and the goal is filed once the host runs.
    host = asyncio.create_task(engine.run_forever(poll))
    while services.gateway.issues.listing(PROJECT) is None or engine._full_due:
        assert not host.done(), f"the host stopped: {host.exception()!r}"
        await asyncio.sleep(0.05)
    await runtime.storage.audit.flush_reads()
    before, at_start = calls_since(db, started)
    result.start_calls = sum(at_start.values())
    answered = answered_requests(runtime)
    cpu, children = time.process_time(), _children_cpu()

    async def file() -> int:
        filed = await harness.call(
            root_project.issues.create,
            {"title": goal.title, "description": goal.description, "labels": "workflow::pm-ready"},
        )
        return int(filed.iid)

    counting = plumbing.counting() if plumbing is not None else contextlib.nullcontext()
    with counting:
        try:
            goal_iid = await file()
            if not webhooks:  # the poll comes now (waiting for it would decide the figure)
                became_ready.setdefault("workflow::pm-ready", time.monotonic())
                engine.wake()
            deadline = time.monotonic() + limit
            # Woken by the host's own move to done; GitLab is asked only every few seconds, in
            # case the end came another way (its CPU is the harness's, taken out of the figure).
            while not finished.is_set() and not await _done(harness, root_project, goal_iid):
                assert time.monotonic() < deadline, "the goal did not reach done in time"
                assert not host.done(), f"the host stopped: {host.exception()!r}"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), _LOOK_EVERY)
            await engine.drain()
        finally:
            host.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await host
            if receiver is not None:
                await receiver.stop()
    result.cpu_seconds = time.process_time() - cpu - harness.seconds
    result.http_requests = answered_requests(runtime) - answered
    result.children_cpu_seconds = _children_cpu() - children
    if plumbing is not None:
        result.launches, result.sqlite_trips = dict(plumbing.launches), plumbing.trips
    await runtime.storage.audit.flush_reads()
    _, ops = calls_since(db, before)
    result.calls = sum(ops.values())
    result.by_operation = dict(ops)
    return result


_HOOK_EVENTS = (
    "issues_events",
    "note_events",
    "merge_requests_events",
    "pipeline_events",
    "emoji_events",
)


_END_LABELS = frozenset({"workflow::done", "workflow::failed"})
_LOOK_EVERY = 5.0  # seconds between the harness's own looks at the goal


class _HarnessCpu:
    """Runs the harness's GitLab calls in a thread and adds up the CPU they took there."""

    def __init__(self) -> None:
        self.seconds = 0.0

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        def timed() -> Any:
            began = time.thread_time()
            try:
                return fn(*args)
            finally:
                self.seconds += time.thread_time() - began

        return await asyncio.to_thread(timed)


def answered_requests(runtime: Runtime) -> int:
    """HTTP answers crewline's clients (its own, and the merge identity's) have counted."""
    clients = [runtime.client, *([runtime.merge_client] if runtime.merge_client else [])]
    return sum(client.budget.answered for client in clients)


def _children_cpu() -> float:
    """User+system CPU of the children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _done(harness: _HarnessCpu, project: Any, iid: int) -> bool:
    issue = await harness.call(project.issues.get, iid)
    return bool(_END_LABELS & set(issue.labels))
