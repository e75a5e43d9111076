"""Which webhook event wakes what on `crewline run`: an issue's labels wake the Discord feed,
a pipeline or merge request event the QA runs parked on that merge request, an emoji or an
approval the gates, and the engine looks at the issue an event names (roles/engine/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from bot.serve import route_event
from forge.own_writes import OwnWrites
from forge.webhooks.events import IssueEvent, MergeRequestEvent, PipelineEvent, WebhookEvent
from roles.engine.loop import Engine

BASE: dict[str, Any] = {
    "uuid": None,
    "received_at": datetime.now(UTC),
    "project_id": 1,
    "project_path": "demo/app",
}


class Recorder:
    """Stands in for the engine and the feed: records which wake-up was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.services = SimpleNamespace(gateway=SimpleNamespace(own_writes=OwnWrites()))

    def notice(self, project: str, iid: int, seen: Any = None) -> None:
        self.calls.append(("notice", project, iid))

    def wake(self) -> None:
        self.calls.append(("wake",))

    def wake_gates(self) -> None:
        self.calls.append(("wake_gates",))

    def wake_parked(self, project: str, *, mr_iid: int | None = None, ref: str = "") -> None:
        self.calls.append(("wake_parked", project, mr_iid, ref))


def routed(event: WebhookEvent, *, feed: bool = True) -> tuple[list[Any], list[Any]]:
    engine, watcher = Recorder(), Recorder()
    route_event(cast(Engine, engine), watcher if feed else None, event)
    return engine.calls, watcher.calls


def test_each_event_wakes_what_it_concerns() -> None:
    labels = IssueEvent(
        **BASE, iid=4, action="update", state="opened", labels=["workflow::dev-ready"],
        previous_labels=["workflow::plan-review"], current_labels=["workflow::dev-ready"],
    )  # fmt: skip
    looked = [("notice", "demo/app", 4)]
    assert routed(labels) == (looked, [("wake",)])
    assert routed(labels, feed=False) == (looked, [])  # a worker: no Discord

    pipeline = PipelineEvent(
        **BASE, pipeline_id=9, ref="crewline/4-greet", sha="a" * 40, status="success",
        source="push", merge_request_iid=None, builds=[],
    )  # fmt: skip
    engine, feed = routed(pipeline)
    assert engine == [("wake_parked", "demo/app", None, "crewline/4-greet")]
    assert feed == []

    approved = MergeRequestEvent(
        **BASE, iid=2, action="approved", state="opened", source_branch="crewline/4-greet",
        target_branch="main", last_commit_sha="b" * 40, labels=[],
    )  # fmt: skip
    engine, _ = routed(approved)
    assert engine == [("wake_parked", "demo/app", 2, "crewline/4-greet"), ("wake_gates",)]
