"""The GitLab rate budget: the simulator's RateLimit-* headers, what crewline reads from them,
how housekeeping slows down above the configured share, and `crewline status` showing it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import requests

from bot.scheduler import Paced
from forge.client import GitLabClient
from forge.rate import RateBudget
from forge.raw_http import project_path, raw_list
from forge.settings import GitLabSettings
from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from tests.support.cli import TOKEN_ENV, WORKER, background, run_cli, write_config
from tests.support.forge import PROJECT, admin, make_project


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def headers(limit: int, observed: int, reset: float) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Observed": str(observed),
        "RateLimit-Remaining": str(max(0, limit - observed)),
        "RateLimit-Reset": str(int(reset)),
    }


def test_the_simulator_reports_gitlabs_rate_headers_per_user_and_minute(
    sim: RunningSim,
) -> None:
    url = f"{sim.base_url}/api/v4/user"
    bot = [requests.get(url, headers={"PRIVATE-TOKEN": "sim-bot-token"}) for _ in range(3)]
    root = requests.get(url, headers={"PRIVATE-TOKEN": "sim-root-token"})
    seen = [(r.headers["RateLimit-Reset"], int(r.headers["RateLimit-Observed"])) for r in bot]
    assert seen[0][1] == 1
    for (window, count), (next_window, next_count) in itertools.pairwise(seen):
        # One more in the same minute window, or 1 again when a new window began.
        assert next_count == (count + 1 if next_window == window else 1)
    last = bot[-1].headers
    assert last["RateLimit-Limit"] == "2000"
    assert int(last["RateLimit-Remaining"]) == 2000 - int(last["RateLimit-Observed"])
    assert int(last["RateLimit-Reset"]) % 60 == 0 and last["RateLimit-ResetTime"].endswith("GMT")
    assert int(root.headers["RateLimit-Observed"]) <= 2  # root counts on its own
    missing = requests.get(
        f"{sim.base_url}/api/v4/projects/no%2Fsuch", headers=bot[0].request.headers
    )
    assert missing.status_code == 404 and "RateLimit-Remaining" in missing.headers


def test_an_enforced_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    config = SimConfig(state_dir=tmp_path / "sim", rate_limit=3, rate_limit_enforced=True)
    with running_sim(config) as sim:
        url = f"{sim.base_url}/api/v4/user"
        answers = [requests.get(url, headers={"PRIVATE-TOKEN": "sim-bot-token"}) for _ in range(8)]
    for answer in answers:  # refused exactly when past the limit in its own minute window
        over = int(answer.headers["RateLimit-Observed"]) > 3
        assert answer.status_code == (429 if over else 200)
    # Eight requests span at most two windows, so one of them went past the limit.
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_the_client_counts_its_calls_and_reads_the_headers(tmp_path: Path) -> None:
    config = SimConfig(state_dir=tmp_path / "sim", rate_limit=10)
    with running_sim(config) as sim:
        make_project(sim)
        client = GitLabClient(
            GitLabSettings(url=sim.base_url, threads=2, rate_limit_share=0.5), "sim-bot-token"
        )
        try:
            calls = 0
            for _ in range(2):  # a second try only if the minute window turned over mid-way
                for _ in range(6):
                    await client.call("project.get", lambda gl: gl.projects.get(PROJECT).id)
                calls += 6
                if (client.budget.snapshot().observed or 0) >= 6:
                    break
        finally:
            await client.close()
    snapshot = client.budget.snapshot()
    assert snapshot.calls_last_minute == calls == client.budget.answered
    assert snapshot.limit == 10 and snapshot.observed is not None and snapshot.observed >= 6
    assert snapshot.remaining == max(0, 10 - snapshot.observed)
    assert snapshot.throttled  # 6 or more of 10 used, above half
    assert client.budget.slowdown() > 1


def test_the_budget_trusts_gitlab_while_its_window_lasts_then_its_own_count() -> None:
    clock = Clock()
    budget = RateBudget(share=0.8, limit_per_minute=100, clock=clock)
    budget.record(headers(2000, 1700, clock.now + 30))  # other hosts of the bot user: 1,700
    now = budget.snapshot()
    assert (now.limit, now.remaining, now.calls_last_minute) == (2000, 300, 1)
    assert now.used == pytest.approx(0.85) and now.throttled
    assert "300 of 2000 requests left this minute, resets in 30 s" in now.describe(clock.now)
    clock.now += 31  # GitLab's window ended: only this process's own count is left
    later = budget.snapshot()
    assert later.limit is None and later.used == pytest.approx(0.01) and not later.throttled
    clock.now += 60
    assert budget.snapshot().calls_last_minute == 0


def test_malformed_headers_count_the_call_but_tell_nothing() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.record(headers(2000, 100, clock.now + 30))
    budget.record({"RateLimit-Limit": "lots", "RateLimit-Remaining": "?"})
    snapshot = budget.snapshot()
    assert snapshot.calls_last_minute == 2 and snapshot.remaining == 1900


def test_slowdown_rises_from_two_to_eight_above_the_share() -> None:
    clock = Clock()
    budget = RateBudget(share=0.8, clock=clock)
    budget.record(headers(1000, 700, clock.now + 30))
    assert budget.slowdown() == 1
    budget.record(headers(1000, 800, clock.now + 30))
    assert budget.slowdown() == 2
    budget.record(headers(1000, 1000, clock.now + 30))
    assert budget.slowdown() == 8


def test_housekeeping_skips_ticks_while_the_budget_is_short_and_resumes_after() -> None:
    clock = Clock()
    budget = RateBudget(share=0.5, clock=clock)
    pace = Paced("poll", budget, interval=10, clock=clock)
    ticks = []
    for _ in range(4):  # ample: every tick runs
        ticks.append(pace.due())
        clock.now += 10
    assert ticks == [True] * 4
    budget.record(headers(100, 100, clock.now + 1000))  # at the limit: every 8th tick
    ticks = []
    for _ in range(16):
        ticks.append(pace.due())
        clock.now += 10
    assert ticks.count(True) == 2 and ticks[7] is True and ticks[15] is True
    clock.now += 1000  # the window is over
    assert [pace.due() for _ in range(2)] == [True, True]


def test_status_shows_gitlabs_budget_and_this_hosts_rate(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim, poll=0.5)
    before = run_cli(config, "status")
    assert re.search(r"^GitLab rate budget: \d+ of 2000 requests left this minute", before, re.M)
    assert "this host: no rate recorded yet" in before
    with background(config, "worker", env=TOKEN_ENV) as worker:
        worker.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        after = ""
        for _ in range(40):
            after = run_cli(config, "status")
            if "this host, " in after:
                break
    host = re.search(r"^this host, \d+ s ago: (.*)$", after, re.M)
    assert host, after
    assert re.search(
        r"\d+ of 2000 requests left this minute.*; [1-9]\d* calls in the last minute", host.group(1)
    )
    assert "polling slows above 80%" in host.group(1)


async def test_every_page_of_a_list_is_an_answer_counted(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    for n in range(5):
        project.issues.create({"title": f"counted {n}"})
    client = GitLabClient(GitLabSettings(url=sim.base_url, threads=1), "sim-bot-token")
    path = project_path(PROJECT, "issues")
    try:
        listed = await client.call("issue.list", lambda gl: raw_list(gl, path, {"per_page": 2}))
    finally:
        await client.close()
    assert len(listed) == 5 and client.budget.answered == 3  # three pages, one call
