"""QA on the in-memory GitLab (``tests/test_qa_on_fake.py``): the real engine with only the
QA role, over ``fake_services``, and an issue whose merge request the "developer" (the test)
already pushed, opened and handed off, so QA finds it by the handoff marker. The test plays
GitLab's runner through ``tracker.state.ci``; nothing runs a pipeline by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from forge.sink import seal
from roles.context import Services
from roles.engine.loop import Engine
from roles.mr_link import mr_marker
from roles.notify import EventLog
from roles.prompts import Prompts
from roles.qa.role import QaRole
from tests.support.fake_services import fake_services
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT


@dataclass(frozen=True)
class Work:
    iid: int
    mr_iid: int
    branch: str
    head: str


@dataclass
class QaOnFake:
    services: Services
    tracker: FakeTracker
    engine: Engine
    desk: EventLog  # the gates the runs asked for (fake_services' desk)

    async def work(self, name: str) -> Work:
        """An issue at qa-ready with its open draft MR (one pushed commit) and handoff."""
        tracker, merges = self.tracker, self.tracker.merges
        issue = await tracker.create_issue(PROJECT, f"QA: {name}", "", ["workflow::qa-ready"])
        branch = f"crewline/{issue.iid}-{name}"
        await merges.ensure_branch(PROJECT, branch, "main")
        head = merges.push(PROJECT, branch)
        mr = await merges.ensure_mr(
            PROJECT, source_branch=branch, target_branch="main", title=f"QA: {name}",
            description=f"Closes #{issue.iid}",
        )  # fmt: skip
        handoff = f"Handoff: !{mr.iid} is ready.\n\n{seal(mr_marker(mr.iid, branch))}"
        await tracker.post_note(PROJECT, issue.iid, handoff)
        return Work(issue.iid, mr.iid, branch, head)

    async def state(self, iid: int) -> str:
        labels = (await self.tracker.get_issue(PROJECT, iid)).labels
        return next(label.split("::")[1] for label in labels if label.startswith("workflow::"))

    async def run(self, passes: int = 3) -> None:
        """Engine passes, each waiting for the runs it started (QA runs no agent)."""
        for _ in range(passes):
            await self.engine.tick()
            await self.engine.drain()

    async def bodies(self, iid: int) -> list[str]:
        return [note.body for note in await self.tracker.notes(PROJECT, iid)]


@asynccontextmanager
async def qa_on_fake(base: Path) -> AsyncIterator[QaOnFake]:
    async with fake_services(base) as (services, tracker):
        engine = Engine(services, {"qa": QaRole(Prompts())})
        assert isinstance(services.desk, EventLog)
        yield QaOnFake(services, tracker, engine, services.desk)
