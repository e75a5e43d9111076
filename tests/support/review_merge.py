"""Set-up for the review, QA and merge end-to-end tests: a crewline runtime that holds the
merge identity (the simulator's maintainer token), a desk that approves plans and either
merges or keeps merge gates for the test to decide, and reading GitLab back as a human."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gitlab
import requests
from gitlab.v4.objects import Project, ProjectMergeRequest
from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import CrewlineConfig, Secrets
from bot.console import ConsoleDesk
from forge.labels import sync_labels
from forge.types import Issue
from roles.gates.decide import Decision, decide_merge
from roles.notify import EventLog, GateRequest
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    file_block,
    file_goal,
    goal_text,
    reach,
    state_of,
)

MAINTAINER_TOKEN = "sim-maintainer-token"

GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
GREET_TEST = """import unittest

from app.greet import greet


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(greet("Ada"), "Hello, Ada!")
"""


def greet_goal(greet: str = GREET, *extra: str) -> str:
    """A small goal the demo agent writes exactly: app/greet.py and its test."""
    return goal_text(
        "A greeting helper.",
        "Check: python3 -m unittest tests.test_greet",
        file_block("app/greet.py", greet),
        file_block("tests/test_greet.py", GREET_TEST),
        *extra,
    )


@dataclass
class GateDesk:
    """Approves every plan as the console desk does. Merge gates are approved and merged
    with the merge identity too, unless ``hold_merges``: then they wait in ``merges``."""

    console: ConsoleDesk
    hold_merges: bool = False
    merges: list[GateRequest] = field(default_factory=list)

    async def request(self, gate: GateRequest) -> None:
        if gate.gate == self.console.gateway.workflow.gate_state("merge").name:
            self.merges.append(gate)
            if self.hold_merges:
                return
        await self.console.request(gate)


@asynccontextmanager
async def merging_runtime(
    sim: RunningSim, config: CrewlineConfig, *, hold_merges: bool = False
) -> AsyncIterator[tuple[Runtime, GateDesk, EventLog]]:
    """A runtime like ``crewline demo``'s: the bot's token, and the maintainer's as the merge
    identity."""
    events = EventLog()
    secrets = Secrets(
        gitlab_token=SecretStr(sim.config.bot_token),
        gitlab_merge_token=SecretStr(sim.config.maintainer_token),
    )
    runtime = await build_runtime(config, secrets, notifier=events)
    console = ConsoleDesk.of(runtime.services, who="a tester")
    desk = GateDesk(console, hold_merges=hold_merges)
    runtime.services.desk = desk
    await sync_labels(runtime.services.gateway, PROJECT)
    try:
        yield runtime, desk, events
    finally:
        await runtime.close()


@asynccontextmanager
async def greet_at_merge_ready(
    sim: RunningSim, base: Path
) -> AsyncIterator[tuple[Runtime, GateDesk, EventLog, Issue]]:
    """The "Add greet" goal filed and run to the merge gate, where merges wait for the test."""
    async with merging_runtime(sim, full_config(sim, base), hold_merges=True) as (
        runtime, desk, events,
    ):  # fmt: skip
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "merge-ready"})
        yield runtime, desk, events, issue


def full_config(sim: RunningSim, base: Path, **changes: object) -> CrewlineConfig:
    """The demo's configuration through review and QA, polling pipelines fast."""
    config = configure(sim, base, through_qa=True, **changes)
    config.roles.pipeline_poll_seconds = 0.2
    config.roles.pipeline_timeout_seconds = 60
    return config


def as_maintainer(sim: RunningSim) -> Project:
    return gitlab.Gitlab(sim.base_url, private_token=MAINTAINER_TOKEN).projects.get(PROJECT)


def commit(sim: RunningSim, branch: str, message: str, files: dict[str, str]) -> str:
    """Commit ``files`` (created or updated) to ``branch`` as the maintainer; the new sha."""
    project = as_maintainer(sim)
    existing = {
        item["path"]
        for item in project.repository_tree(ref=branch, recursive=True, all=True)
        if item["type"] == "blob"
    }
    actions = [
        {
            "action": "update" if path in existing else "create",
            "file_path": path,
            "content": content,
        }
        for path, content in files.items()
    ]
    done = project.commits.create({"branch": branch, "commit_message": message, "actions": actions})
    return str(done.id)


def issue_mr(sim: RunningSim, iid: int) -> ProjectMergeRequest:
    """The one merge request that closes issue ``iid``, read as the maintainer."""
    project = as_maintainer(sim)
    mrs = [
        mr
        for mr in project.mergerequests.list(state="all", get_all=True)
        if f"Closes #{iid}" in mr.description
    ]
    assert len(mrs) == 1, [mr.iid for mr in mrs]
    return project.mergerequests.get(mrs[0].iid)


def inject_fault(sim: RunningSim, **rule: object) -> None:
    response = requests.post(
        f"{sim.base_url}/api/v4/_sim/faults",
        json=rule,
        headers={"PRIVATE-TOKEN": sim.config.root_token},
        timeout=5,
    )
    assert response.status_code == 201, response.text


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    """Poll ``check`` (without ticking the engine) until it holds."""
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def at(runtime: Runtime, iid: int, state: str) -> bool:
    return await state_of(runtime, iid) == state


def file_on(sim: RunningSim, path: str, ref: str = "main") -> str:
    raw = as_maintainer(sim).files.raw(file_path=path, ref=ref)
    assert isinstance(raw, bytes)
    return raw.decode()


async def decide(runtime: Runtime, iid: int, revision: str, approver: str = "bob") -> Decision:
    """A maintainer's approval through the gate, merging with the merge identity."""
    return await decide_merge(
        runtime.services.gateway, runtime.storage.leases, PROJECT, iid, revision=revision,
        approve=True, who=approver, via="a test", approver=approver,
        merger=runtime.services.merger, worker=runtime.services.worker,
    )  # fmt: skip
