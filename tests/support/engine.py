"""Set-up for end-to-end engine tests: the seeded simulator, a crewline runtime wired as
`crewline demo` wires it (real SQLite, real git, real agent subprocesses), and helpers
to drive the engine and read GitLab back."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import gitlab
from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import CrewlineConfig, Secrets
from bot.console import ConsoleDesk
from bot.demo import demo_config
from forge.claims import ClaimMarker
from forge.labels import sync_labels
from forge.types import Issue
from roles.notify import EventLog
from roles.settings import AgentSettings
from sim.core.app import RunningSim
from tests.support.faults import as_written
from workflow import read_state

PROJECT = "demo/app"
FAKE_AGENTS = Path(__file__).resolve().parent.parent / "fake_agents"
NOTE_KEY = re.compile(r"<!-- crewline:note key=(\S+) -->")


def fake_agent(name: str, **extra: Any) -> AgentSettings:
    """A test agent: tests/fake_agents/<name>.py run through the command adapter."""
    return AgentSettings(
        kind="command",
        command=sys.executable,
        args=[str(FAKE_AGENTS / f"{name}.py")],
        timeout_seconds=60,
        **extra,
    )


def configure(
    sim: RunningSim, base: Path, *, through_qa: bool = False, **changes: Any
) -> CrewlineConfig:
    """The demo's configuration against ``sim``, with top-level ``changes``. Unless
    ``through_qa``, the review and QA roles are off, so work rests at review-ready."""
    config = demo_config(base, sim.base_url)
    if not through_qa:
        config.roles.review.enabled = False
        config.roles.qa.enabled = False
    return config.model_copy(update=changes)


def configure_agent(sim: RunningSim, base: Path, role: str, script: str) -> CrewlineConfig:
    """:func:`configure` with ``role``'s agent the test agent tests/fake_agents/<script>.py
    (the other roles keep the demo agent)."""
    config = configure(
        sim,
        base,
        agents={
            "demo": AgentSettings(kind="demo", timeout_seconds=60),
            script: fake_agent(script),
        },
    )
    getattr(config.roles, role).agent = script
    return config


@asynccontextmanager
async def runtime_for(
    sim: RunningSim,
    config: CrewlineConfig,
    *,
    log: EventLog | None = None,
    secrets: Secrets | None = None,
) -> AsyncIterator[tuple[Runtime, EventLog]]:
    """A runtime whose console desk approves every gate (and merges when ``secrets``
    carry a merge token)."""
    events = log or EventLog()
    secrets = secrets or Secrets(gitlab_token=SecretStr(sim.config.bot_token))
    runtime = await build_runtime(config, secrets, notifier=events)
    runtime.services.desk = ConsoleDesk.of(runtime.services, who="a tester")
    await sync_labels(runtime.services.gateway, PROJECT)
    try:
        yield runtime, events
    finally:
        await runtime.close()


async def file_goal(runtime: Runtime, title: str, description: str) -> Issue:
    wf = runtime.services.workflow
    return await runtime.services.gateway.create_issue(
        PROJECT, title, description, [wf.state(wf.entry).label]
    )


async def state_of(runtime: Runtime, iid: int) -> str | None:
    issue = await runtime.services.gateway.get_issue(PROJECT, iid)
    state = read_state(runtime.services.workflow, issue.labels).state
    return state.name if state else None


async def drive(
    runtime: Runtime,
    done: Callable[[], Awaitable[bool]],
    *,
    limit: float = 60.0,
) -> None:
    """Tick the engine until ``done()`` holds with nothing running (or fail at ``limit``)."""
    deadline = time.monotonic() + limit
    while True:
        await runtime.engine.tick()
        if not runtime.engine.busy and await done():
            return
        assert time.monotonic() < deadline, "the engine did not get there in time"
        await runtime.engine.between_passes(busy=0.5, idle=0.1)


async def reach(runtime: Runtime, expected: dict[int, str], limit: float = 60.0) -> None:
    async def all_there() -> bool:
        return all([await state_of(runtime, iid) == want for iid, want in expected.items()])

    try:
        await drive(runtime, all_there, limit=limit)
    except AssertionError:
        actual = {iid: await state_of(runtime, iid) for iid in expected}
        raise AssertionError(f"expected {expected}, got {actual}") from None


def root(sim: RunningSim) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token="sim-root-token")


def note_bodies(sim: RunningSim, iid: int) -> list[str]:
    issue = root(sim).projects.get(PROJECT).issues.get(iid)
    notes = issue.notes.list(get_all=True, order_by="created_at", sort="asc")
    return [as_written(note.body) for note in notes]


def goal_text(*parts: str) -> str:
    return "\n\n".join(parts)


def file_block(path: str, body: str, *, first_attempt: bool = False) -> str:
    kind = "demo-file-first-attempt" if first_attempt else "demo-file"
    return f"```{kind} {path}\n{body}```"


def assert_exactly_one_of_each(
    sim: RunningSim, iid: int, *, roles: tuple[str, ...] = ("pm", "dev"), merged: bool = False
) -> None:
    """One branch (none left once merged: GitLab deleted it), one MR and one copy of each
    keyed note on the issue and on the MR; one claim per role (a resumed run re-adopts its
    claim, it never claims again)."""
    project = root(sim).projects.get(PROJECT)
    branches = [b.name for b in project.branches.list(get_all=True)]
    ours = [b for b in branches if b.startswith(f"crewline/{iid}-")]
    assert len(ours) == (0 if merged else 1), branches
    mrs = [mr for mr in project.mergerequests.list(get_all=True) if f"#{iid}" in mr.description]
    assert len(mrs) == 1
    assert mrs[0].state == ("merged" if merged else "opened")
    issue_notes = [note.body for note in project.issues.get(iid).notes.list(get_all=True)]
    mr_notes = [note.body for note in mrs[0].notes.list(get_all=True)]
    for bodies in (issue_notes, mr_notes):
        keys = Counter(key for body in bodies for key in NOTE_KEY.findall(body))
        assert keys and max(keys.values()) == 1, keys
    claims = [m for m in map(ClaimMarker.parse, issue_notes) if m is not None]
    assert Counter(marker.role for marker in claims) == dict.fromkeys(roles, 1)


def agent_log(base: Path, iid: int, name: str) -> list[dict[str, Any]]:
    """The lines a fake agent logged to ``<name>.log`` in its transcript directories (one per
    run of the issue: a sandboxed agent may write there and nowhere else), oldest run first."""
    logs = sorted(
        (base / "runs" / PROJECT.replace("/", "_") / str(iid)).glob(f"*/{name}.log"),
        key=lambda path: path.stat().st_mtime,
    )
    return [json.loads(line) for log in logs for line in log.read_text().splitlines()]
