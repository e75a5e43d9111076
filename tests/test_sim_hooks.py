"""Simulator project webhooks: the hooks API and deliveries to a real aiohttp receiver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests
from aiohttp import web

from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from tests.support.sim_issues import MAINTAINER_TOKEN, ROOT_TOKEN, client, make_project

HOOK_FIELDS = {
    "id", "url", "project_id", "push_events", "issues_events", "confidential_issues_events",
    "merge_requests_events", "tag_push_events", "note_events", "confidential_note_events",
    "job_events", "pipeline_events", "wiki_page_events", "enable_ssl_verification",
    "created_at",
}  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class Receiver:
    """A webhook endpoint on a loopback port; answers 500 to the first ``failures`` posts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = 500 if self.failures > 0 else 200
        self.failures -= 1
        with self._changed:
            self.deliveries.append(Delivery(dict(request.headers), body, status))
            self._changed.notify_all()
        return web.json_response({}, status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Delivery]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout)
            assert len(self.deliveries) >= count, f"only {len(self.deliveries)} deliveries"
            return list(self.deliveries)


@pytest.fixture
def fast_sim(tmp_path: Path) -> Iterator[RunningSim]:
    config = SimConfig(state_dir=tmp_path / "sim", hook_retries=2, hook_retry_delay=0.05)
    with running_sim(config) as running:
        yield running


def hooks_of(sim: RunningSim, project_id: int) -> Any:
    return client(sim, MAINTAINER_TOKEN).projects.get(project_id, lazy=True).hooks


def test_hooks_api_needs_maintainer(sim: RunningSim) -> None:
    project_id = make_project(sim)
    hooks = hooks_of(sim, project_id)
    hook = hooks.create(
        {"url": "http://127.0.0.1:9/hook", "token": "s3cret", "issues_events": True}
    )
    assert set(hook.attributes) >= HOOK_FIELDS
    assert "token" not in hook.attributes  # GitLab never shows the secret back
    assert (hook.push_events, hook.issues_events, hook.note_events) == (True, True, False)
    assert hook.enable_ssl_verification is True
    hook.note_events = True
    hook.save()
    assert hooks.get(hook.id).note_events is True
    assert [h.id for h in hooks.list()] == [hook.id]

    developer = client(sim).projects.get(project_id, lazy=True)
    with pytest.raises(gitlab.exceptions.GitlabListError) as refused:
        developer.hooks.list()
    assert refused.value.response_code == 403
    bad = requests.post(
        f"{sim.base_url}/api/v4/projects/{project_id}/hooks",
        json={"url": "ftp://example.invalid"},
        headers={"PRIVATE-TOKEN": MAINTAINER_TOKEN},
        timeout=5,
    )
    assert bad.status_code == 400

    hook.delete()
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        hooks.get(hook.id)


def test_issue_and_note_events_reach_the_receiver(fast_sim: RunningSim) -> None:
    project_id = make_project(fast_sim)
    with Receiver() as receiver:
        hooks_of(fast_sim, project_id).create(
            {"url": receiver.url, "token": "s3cret", "issues_events": True, "note_events": True}
        )
        project = client(fast_sim).projects.get(project_id)
        issue = project.issues.create({"title": "Hooked", "labels": ["workflow::pm-ready"]})
        opened = receiver.wait_for(1)[0]
        assert opened.headers["X-Gitlab-Event"] == "Issue Hook"
        assert opened.headers["X-Gitlab-Token"] == "s3cret"
        assert opened.headers["X-Gitlab-Instance"] == fast_sim.base_url
        assert opened.headers["User-Agent"] == "GitLab/17.5.0"
        assert opened.headers["Content-Type"].startswith("application/json")
        assert opened.headers["X-Gitlab-Event-UUID"]
        body = opened.body
        assert (body["object_kind"], body["event_type"]) == ("issue", "issue")
        assert body["object_attributes"]["action"] == "open"
        assert body["object_attributes"]["iid"] == issue.iid
        assert body["user"]["username"] == "crewline-bot"
        assert body["project"]["path_with_namespace"] == "demo/app"
        assert [label["title"] for label in body["labels"]] == ["workflow::pm-ready"]
        assert set(body["repository"]) >= {"name", "url", "homepage"}

        project.issues.update(issue.iid, {"add_labels": "workflow::pm-running"})
        changed = receiver.wait_for(2)[1].body
        assert changed["object_attributes"]["action"] == "update"
        labels_change = changed["changes"]["labels"]
        assert [x["title"] for x in labels_change["previous"]] == ["workflow::pm-ready"]
        assert [x["title"] for x in labels_change["current"]] == ["workflow::pm-running"]
        assert set(changed["changes"]["updated_at"]) == {"previous", "current"}

        project.issues.update(issue.iid, {"state_event": "close"})
        assert receiver.wait_for(3)[2].body["object_attributes"]["action"] == "close"

        note = issue.notes.create({"body": "a comment"})
        delivered = receiver.wait_for(4)[3]
        assert delivered.headers["X-Gitlab-Event"] == "Note Hook"
        note_body = delivered.body
        assert note_body["object_kind"] == "note"
        assert note_body["object_attributes"]["id"] == note.id
        assert note_body["object_attributes"]["note"] == "a comment"
        assert note_body["object_attributes"]["noteable_type"] == "Issue"
        assert note_body["issue"]["iid"] == issue.iid
        assert len({d.headers["X-Gitlab-Event-UUID"] for d in receiver.deliveries}) == 4


def test_hooks_only_get_the_events_they_asked_for(fast_sim: RunningSim) -> None:
    project_id = make_project(fast_sim)
    with Receiver() as notes_only, Receiver() as issues_only:
        hooks = hooks_of(fast_sim, project_id)
        hooks.create({"url": notes_only.url, "note_events": True})
        hooks.create({"url": issues_only.url, "issues_events": True})
        issue = client(fast_sim).projects.get(project_id).issues.create({"title": "x"})
        issue.notes.create({"body": "y"})
        assert notes_only.wait_for(1)[0].headers["X-Gitlab-Event"] == "Note Hook"
        assert issues_only.wait_for(1)[0].headers["X-Gitlab-Event"] == "Issue Hook"
        # each delivery is recorded once it settles; both are in by now or soon
        deliveries = wait_for_outcomes(fast_sim, 2)
        assert sorted(d["event_kind"] for d in deliveries) == ["issue", "note"]
        assert len(notes_only.deliveries) == len(issues_only.deliveries) == 1


def wait_for_outcomes(sim: RunningSim, count: int) -> list[dict[str, Any]]:
    """The admin deliveries listing once ``count`` deliveries have settled."""
    for _ in range(300):
        listed = requests.get(
            f"{sim.base_url}/api/v4/_sim/hook_deliveries",
            headers={"PRIVATE-TOKEN": ROOT_TOKEN},
            timeout=5,
        ).json()
        settled = [d for d in listed if d["outcome"] != "pending"]
        if len(settled) >= count:
            return settled
        threading.Event().wait(0.05)
    raise AssertionError(f"fewer than {count} deliveries settled")


def test_failed_delivery_is_retried_with_the_same_uuid(fast_sim: RunningSim) -> None:
    project_id = make_project(fast_sim)
    with Receiver(failures=1) as receiver:
        hook = hooks_of(fast_sim, project_id).create({"url": receiver.url, "issues_events": True})
        client(fast_sim).projects.get(project_id).issues.create({"title": "retry me"})
        first, second = receiver.wait_for(2)
        assert (first.status, second.status) == (500, 200)
        assert first.headers["X-Gitlab-Event-UUID"] == second.headers["X-Gitlab-Event-UUID"]
        assert first.body == second.body
        (delivery,) = wait_for_outcomes(fast_sim, 1)
    assert delivery["hook_id"] == hook.id
    assert (delivery["attempts"], delivery["status"], delivery["outcome"]) == (2, 200, "delivered")
    assert delivery["event_uuid"] == first.headers["X-Gitlab-Event-UUID"]


def test_unreachable_hook_fails_after_the_configured_retries(fast_sim: RunningSim) -> None:
    project_id = make_project(fast_sim)
    with Receiver() as receiver:
        dead_url = receiver.url
    hooks_of(fast_sim, project_id).create({"url": dead_url, "issues_events": True})
    client(fast_sim).projects.get(project_id).issues.create({"title": "nobody listens"})
    (delivery,) = wait_for_outcomes(fast_sim, 1)
    assert (delivery["attempts"], delivery["status"], delivery["outcome"]) == (3, None, "failed")
    assert delivery["error"]
    refused = requests.get(
        f"{fast_sim.base_url}/api/v4/_sim/hook_deliveries",
        headers={"PRIVATE-TOKEN": "sim-bot-token"},
        timeout=5,
    )
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})
