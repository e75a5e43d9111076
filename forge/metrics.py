"""crewline's Prometheus metrics: every family in one place, recorded with one-line calls at
the seams that already exist (GitLab calls, claims, runs, agents, validation, webhooks, the
janitor) and served at ``/metrics`` by ``crewline run`` and ``crewline worker``.

It lives in ``forge/`` because every layer that records may import forge (roles and bot do;
forge itself records its GitLab calls, claims and webhooks). Labels are bounded sets: roles,
outcomes, configured projects, check names and agent names, constant GitLab operation names
and HTTP statuses, guard rule names. Never an issue iid, a run id or free text.

The families are registered in prometheus-client's default registry, so the process
collectors (CPU, memory, open files) are served beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:  # imported where it serves: a host without listeners never loads it
    from forge.http_serve import Request, Response

T = TypeVar("T")

# Runs last from seconds (a PM plan with the demo agent) to hours (a developer turn with
# validation); turns likewise. The buckets span both without an iid-sized label set.
_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)

RUNS_STARTED = Counter("crewline_runs_started_total", "Runs started, by role", ["role"])
RUNS_FINISHED = Counter(
    "crewline_runs_finished_total",
    "Runs finished, by role and outcome (succeeded, failed, blocked, ..., abandoned)",
    ["role", "outcome"],
)
RUN_SECONDS = Histogram(
    "crewline_run_duration_seconds",
    "Wall time of a run in this process, from launch to its task's end",
    ["role"],
    buckets=_RUN_BUCKETS,
)
AGENT_TURN_SECONDS = Histogram(
    "crewline_agent_turn_duration_seconds",
    "Wall time of one agent turn",
    ["agent"],
    buckets=_RUN_BUCKETS,
)
AGENT_TOKENS = Counter(
    "crewline_agent_tokens_total",
    "Tokens the agents reported, by agent and direction (in, out)",
    ["agent", "direction"],
)
AGENT_COST = Counter(
    "crewline_agent_cost_usd_total", "Cost the agents reported, in US dollars", ["agent"]
)
CLAIMS = Counter(
    "crewline_claims_total",
    "Claim attempts and recoveries by result: won, lost (another worker won the round), "
    "expired (a claim re-queued by the janitor)",
    ["result"],
)
READY_ISSUES = Gauge(
    "crewline_ready_issues",
    "Issues waiting in a role's ready state at the engine's last listing (not refreshed "
    "while the role has no free slot on this worker)",
    ["role", "project"],
)
GITLAB_CALLS = Counter(
    "crewline_gitlab_calls_total",
    "GitLab API calls by operation and final status (ok, an HTTP status, or unavailable), "
    "after crewline's retries",
    ["operation", "status"],
)
GITLAB_RESPONSES = Counter(
    "crewline_gitlab_http_responses_total",
    "HTTP responses from GitLab by status class, retries included (2xx, 4xx, 429, 5xx)",
    ["status"],
)
GITLAB_RATELIMIT_REMAINING = Gauge(
    "crewline_gitlab_ratelimit_remaining",
    "The RateLimit-Remaining header of the last GitLab response that carried one",
)
VALIDATION_CHECKS = Counter(
    "crewline_validation_checks_total",
    "Validation checks run, by check name and result (passed, failed, timed_out)",
    ["check", "result"],
)
GUARD_FINDINGS = Counter(
    "crewline_guard_findings_total", "GitLab writes the guard blocked, by rule", ["rule"]
)
WEBHOOK_EVENTS = Counter(
    "crewline_webhook_events_total",
    "Webhook deliveries by result: queued, duplicate, ignored, unusable, unauthorized, queue_full",
    ["result"],
)
JANITOR_RECOVERIES = Counter(
    "crewline_janitor_recoveries_total",
    "What the janitor did, by kind (requeued, failed, repaired, merged, back_to_qa, decided, "
    "timed_out, copies_checked)",
    ["kind"],
)
DISCORD_QUEUE = Gauge(
    "crewline_discord_queue_jobs", "Discord messages and edits waiting to be sent (run only)"
)
JANITOR_STUCK = Gauge("crewline_janitor_stuck_issues", "Stuck issues at the janitor's last pass")


def exposition() -> tuple[bytes, str]:
    """The text exposition of every registered family, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# The paths every crewline listener serves (``forge.http_serve.probe_routes``); defined
# here, where the settings can name them without loading the listener.
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"


async def handler(_request: Request) -> Response:
    """``GET /metrics`` on a listener of ``forge.http_serve``."""
    from forge.http_serve import Response

    body, content_type = exposition()
    return Response(200, body, content_type)


# -- recorders: one call at each seam -------------------------------------------------------


def run_launched(role: str, task: asyncio.Task[Any]) -> None:
    """A run's task started; its duration is observed when the task ends, however it ends."""
    RUNS_STARTED.labels(role).inc()
    started = time.monotonic()
    task.add_done_callback(lambda _: RUN_SECONDS.labels(role).observe(time.monotonic() - started))


def run_finished(role: str, outcome: str) -> None:
    RUNS_FINISHED.labels(role, outcome).inc()


def gitlab_call(operation: str, status: int | str | None) -> None:
    GITLAB_CALLS.labels(operation, str(status or "unavailable")).inc()


class _Response(Protocol):
    status_code: int
    headers: Any


def gitlab_response(response: _Response, *args: Any, **kwargs: Any) -> None:
    """A ``requests`` response hook: every HTTP answer, retried ones included."""
    status = response.status_code
    GITLAB_RESPONSES.labels("429" if status == 429 else f"{status // 100}xx").inc()
    remaining = response.headers.get("RateLimit-Remaining")
    if remaining is not None:
        # A malformed header tells nothing; the last good value stays.
        with contextlib.suppress(ValueError):
            GITLAB_RATELIMIT_REMAINING.set(float(remaining))


async def agent_turn(agent: str, turn: Awaitable[T]) -> T:
    """Await ``turn`` (an agent's run), timing it and counting the usage it reports."""
    started = time.monotonic()
    try:
        result = await turn
    finally:
        AGENT_TURN_SECONDS.labels(agent).observe(time.monotonic() - started)
    usage = getattr(result, "usage", None)
    if usage is not None:
        AGENT_TOKENS.labels(agent, "in").inc(max(0, usage.tokens_in))
        AGENT_TOKENS.labels(agent, "out").inc(max(0, usage.tokens_out))
        AGENT_COST.labels(agent).inc(max(0.0, usage.cost_usd))
    return result


class _Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def timed_out(self) -> bool: ...

    @property
    def passed(self) -> bool: ...


def validation(results: Iterable[_Check]) -> None:
    for result in results:
        outcome = "timed_out" if result.timed_out else "passed" if result.passed else "failed"
        VALIDATION_CHECKS.labels(result.name, outcome).inc()


class _JanitorReport(Protocol):
    requeued: list[str]
    failed: list[str]
    repaired: list[str]
    merged: list[str]
    back_to_qa: list[str]
    decided: list[str]
    timed_out: list[str]
    stuck: list[str]
    copies_checked: list[str]


def janitor(report: _JanitorReport) -> None:
    kinds = ("requeued", "failed", "repaired", "merged", "back_to_qa", "decided", "timed_out")
    for kind in (*kinds, "copies_checked"):  # copies_checked: keyed notes a crash left owed
        count = len(getattr(report, kind))
        if count:
            JANITOR_RECOVERIES.labels(kind).inc(count)
    JANITOR_STUCK.set(len(report.stuck))
