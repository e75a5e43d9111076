"""`/metrics`, `/healthz` and `/readyz`: a real `crewline worker` subprocess against the
seeded simulator is scraped before and after a goal moves, and its readiness follows its
SQLite file; the families' recorders are checked at their seams."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.demo_goals import GOALS
from bot.observe import Observer
from bot.settings import ObservabilitySettings
from forge import metrics
from forge.webhooks import WebhookReceiver, WebhookSettings
from forge.webhooks.events import WebhookEvent
from roles.agents.base import AgentResult, Usage
from sim.core.app import RunningSim
from storage import Storage
from tests.support.cli import (
    TOKEN_ENV,
    WORKER,
    background,
    ends_cleanly,
    file_by_hand,
    run_cli,
    wait_for_state,
    write_config,
)
from tests.support.webhook_payloads import issue_payload

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    return sum(
        v for (n, lbls), v in samples.items() if n == name and set(labels.items()) <= set(lbls)
    )


def scrape(base: str) -> Samples:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def test_a_worker_serves_metrics_that_follow_a_goal_and_readiness_that_follows_its_database(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    with config.open("a", encoding="utf-8") as extra:
        extra.write("\n[observability]\nenabled = true\nport = 0\n")
    run_cli(config, "labels", "sync")
    with background(config, "worker", "--auto-approve-plans", env=TOKEN_ENV) as worker:
        base = worker.wait_for_line(r"observability: /metrics /healthz /readyz at (\S+)")[1]
        worker.wait_for_line(rf"crewline {WORKER}: working on")
        assert requests.get(f"{base}/healthz", timeout=10).text == "ok"
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200

        database = tmp_path / "state" / "crewline.sqlite3"
        database.rename(database.with_suffix(".away"))  # the volume went missing
        try:
            refused = requests.get(f"{base}/readyz", timeout=10)
        finally:
            database.with_suffix(".away").rename(database)
        assert refused.status_code == 503
        assert "unreachable" in refused.text and str(database) in refused.text
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200

        before = scrape(base)
        iid = file_by_hand(demo_sim, GOALS[0].title, GOALS[0].description)
        wait_for_state(demo_sim, iid, "review-ready", worker)
        # The issue moves before the run records its end: wait for the dev run's end.
        deadline = time.monotonic() + 30
        while not value(after := scrape(base), "crewline_runs_finished_total", role="dev"):
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.2)
        ends_cleanly(worker)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for role in ("pm", "dev"):
        assert grew("crewline_runs_started_total", role=role) == 1
        assert grew("crewline_runs_finished_total", role=role, outcome="succeeded") == 1
        assert grew("crewline_run_duration_seconds_count", role=role) == 1
    assert grew("crewline_claims_total", result="won") == 2
    assert grew("crewline_gitlab_calls_total", operation="issue.list", status="ok") > 0
    assert grew("crewline_gitlab_calls_total", operation="note.create", status="ok") > 0
    assert grew("crewline_gitlab_http_responses_total", status="2xx") > 0
    assert grew("crewline_agent_turn_duration_seconds_count") >= 2  # a plan, an implementation
    assert grew("crewline_validation_checks_total", result="passed") >= 1
    ready = [lbls for (n, lbls) in after if n == "crewline_ready_issues"]
    assert (("project", "demo/app"), ("role", "pm")) in ready
    assert value(after, "crewline_ready_issues", role="pm") == 0  # the goal left pm-ready
    # Bounded labels: no family is labelled by issue.
    assert not any(key in dict(lbls) for (_, lbls) in after for key in ("iid", "issue"))


async def test_readyz_fails_until_the_runtime_is_started_and_after_the_database_closes(
    tmp_path: Path,
) -> None:
    storage = await Storage.open(tmp_path / "db.sqlite3")
    observer = Observer(ObservabilitySettings(enabled=True, port=0), storage)
    base = await observer.start()
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> tuple[int, str]:
                async with session.get(f"{base}/readyz") as response:
                    return response.status, await response.text()

            assert await ready() == (503, "not ready: the runtime is not started yet")
            observer.started = True
            assert await ready() == (200, "ready")
            await storage.close()
            assert await ready() == (503, "not ready: the database is closed")
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200  # alive, though not ready
    finally:
        await observer.stop()
        await storage.close()


async def test_agent_usage_and_turn_time_are_counted_by_agent() -> None:
    def tokens(direction: str) -> float:
        return metrics.AGENT_TOKENS.labels("probe-agent", direction)._value.get()

    async def turn() -> AgentResult:
        await asyncio.sleep(0)
        return AgentResult(True, "done", Path("t"), usage=Usage(120, 30, 0.25))

    ins, outs = tokens("in"), tokens("out")
    cost = metrics.AGENT_COST.labels("probe-agent")._value.get()
    result = await metrics.agent_turn("probe-agent", turn())
    assert result.output == "done"
    assert (tokens("in") - ins, tokens("out") - outs) == (120, 30)
    assert metrics.AGENT_COST.labels("probe-agent")._value.get() - cost == pytest.approx(0.25)


class _Answer:
    def __init__(self, status: int, remaining: str | None) -> None:
        self.status_code = status
        self.headers = {} if remaining is None else {"RateLimit-Remaining": remaining}


def test_rate_limit_remaining_and_429s_are_read_from_every_response() -> None:
    limited = metrics.GITLAB_RESPONSES.labels("429")
    before = limited._value.get()
    metrics.gitlab_response(_Answer(200, "1999"))
    assert metrics.GITLAB_RATELIMIT_REMAINING._value.get() == 1999
    metrics.gitlab_response(_Answer(429, "0"))
    metrics.gitlab_response(_Answer(200, "not-a-number"))  # the last good value stays
    assert metrics.GITLAB_RATELIMIT_REMAINING._value.get() == 0
    assert limited._value.get() - before == 1


async def test_the_webhook_receiver_serves_metrics_that_count_its_deliveries() -> None:
    secret = "observed-secret"
    received: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        received.append(event)

    receiver = WebhookReceiver(SecretStr(secret), on_event, WebhookSettings(port=0))
    base = await receiver.start()
    url = f"{base}{receiver.settings.path}"
    headers = {"X-Gitlab-Token": secret, "X-Gitlab-Event-UUID": "uuid-1"}
    try:
        async with aiohttp.ClientSession() as session:

            async def count(result: str) -> float:
                async with session.get(f"{base}{metrics.METRICS_PATH}") as response:
                    assert response.status == 200
                    return value(parse(await response.text()), "crewline_webhook_events_total",
                                 result=result)  # fmt: skip

            before = {r: await count(r) for r in ("queued", "duplicate", "unauthorized")}
            for token in (secret, secret, "wrong"):
                sent = {**headers, "X-Gitlab-Token": token}
                async with session.post(url, json=issue_payload(), headers=sent) as response:
                    assert response.status in (202, 200, 401)
            after = {r: await count(r) for r in before}
    finally:
        await receiver.stop()
    assert {r: after[r] - before[r] for r in before} == {
        "queued": 1,
        "duplicate": 1,
        "unauthorized": 1,
    }
    assert len(received) == 1
