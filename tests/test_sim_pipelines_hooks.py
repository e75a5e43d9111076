"""Simulator pipeline and job webhooks: delivered to crewline's own webhook receiver, which
must read them as typed pipeline events, and job events with GitLab's ``build`` shape."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import requests
from pydantic import SecretStr

from forge.webhooks import WebhookReceiver, WebhookSettings
from forge.webhooks.events import PipelineEvent
from sim.core.app import RunningSim
from tests.support.sim_mr import ROOT_TOKEN, make_repo, record_events
from tests.support.sim_pipelines import only_pipeline, wait_idle
from tests.support.webhooks import SECRET, Recorder

TWO_JOBS = """stages: [lint, test]
lint:
  stage: lint
  script: ['echo tidy']
unit:
  stage: test
  script: ['echo broken', 'exit 2']
"""


async def _final_event(recorder: Recorder, seconds: float = 20) -> PipelineEvent:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = [
            e
            for e in recorder.events
            if isinstance(e, PipelineEvent) and e.status in ("success", "failed")
        ]
        if done:
            return done[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished pipeline among {len(recorder.events)} events")


def _deliveries(sim: RunningSim, hook_id: int) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{sim.base_url}/api/v4/_sim/hook_deliveries",
        params={"hook_id": hook_id, "per_page": 100},
        headers={"PRIVATE-TOKEN": ROOT_TOKEN},
        timeout=10,
    )
    answer.raise_for_status()
    deliveries: list[dict[str, Any]] = answer.json()
    return deliveries


async def test_pipeline_hooks_reach_crewline_as_typed_pipeline_events(sim: RunningSim) -> None:
    recorder = Recorder()
    settings = WebhookSettings(port=0)
    receiver = WebhookReceiver(SecretStr(SECRET), recorder, settings)
    url = await receiver.start() + settings.path
    try:
        repo = await asyncio.to_thread(make_repo, sim)
        hook = await asyncio.to_thread(
            repo.maintainer.hooks.create,
            {"url": url, "token": SECRET, "push_events": False, "pipeline_events": True,
             "job_events": True},
        )  # fmt: skip
        sha = await asyncio.to_thread(repo.feature, "hooked", {".gitlab-ci.yml": TWO_JOBS})
        await asyncio.to_thread(wait_idle, sim)
        final = await _final_event(recorder)
        pipeline = await asyncio.to_thread(only_pipeline, repo.root, sha)
        assert (final.pipeline_id, final.sha, final.ref) == (pipeline.id, sha, "hooked")
        assert (final.status, final.source, final.merge_request_iid) == ("failed", "push", None)
        assert final.project_path == "demo/app"
        builds = {build.name: build for build in final.builds}
        assert (builds["lint"].stage, builds["lint"].status) == ("lint", "success")
        assert (builds["unit"].status, builds["unit"].failure_reason) == (
            "failed",
            "script_failure",
        )
        statuses = {e.status for e in recorder.events if isinstance(e, PipelineEvent)}
        assert statuses == {"pending", "running", "failed"}  # one hook per status change
        deliveries = await asyncio.to_thread(_deliveries, sim, hook.id)
        kinds = {d["event_kind"] for d in deliveries if d["outcome"] == "delivered"}
        assert kinds == {"pipeline", "job"}  # job hooks go out too (crewline ignores them)
    finally:
        await receiver.stop()


def test_job_events_carry_each_status_change_in_gitlab_build_shape(sim: RunningSim) -> None:
    events = record_events(sim, "job")
    repo = make_repo(sim)
    sha = repo.feature("jobs", {".gitlab-ci.yml": TWO_JOBS})
    wait_idle(sim)
    pipeline = only_pipeline(repo.root, sha)
    unit = events.wait_for(
        lambda e: e.payload["build_name"] == "unit" and e.payload["build_status"] == "failed"
    ).payload
    assert unit["object_kind"] == "build" and unit["pipeline_id"] == pipeline.id
    assert (unit["sha"], unit["ref"], unit["build_stage"]) == (sha, "jobs", "test")
    assert unit["build_failure_reason"] == "script_failure" and unit["build_duration"] >= 0
    assert unit["project"]["path_with_namespace"] == "demo/app"
    assert unit["commit"]["sha"] == sha and unit["user"]["username"] == "root"
    seen = [e.payload["build_status"] for e in events.matching(
        lambda e: e.payload["build_name"] == "lint")]  # fmt: skip
    assert seen == ["pending", "running", "success"]
