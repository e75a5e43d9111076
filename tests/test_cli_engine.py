"""`crewline labels sync`, `status`, `worker`, `run` and `doctor` as real subprocesses, with a
real crewline.toml, against the seeded simulator running in the test process."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from bot.demo_goals import GOALS
from roles.gates.decide import decide_plan
from roles.pm.plan_notes import load_plan
from sim.core.app import RunningSim
from tests.support.cli import (
    HOOK_SECRET,
    TOKEN_ENV,
    WORKER,
    WORKFLOW,
    background,
    ends_cleanly,
    file_by_hand,
    run_cli,
    state_of,
    wait_for_state,
    write_config,
)
from tests.support.engine import PROJECT, configure, note_bodies, root, runtime_for
from tests.support.webhook_payloads import issue_payload
from tests.test_cli import crewline


@pytest.fixture
def config(tmp_path: Path, demo_sim: RunningSim) -> Path:
    return write_config(tmp_path / "crewline.toml", demo_sim)


# ------------------------------------------------------------------ labels sync


def test_labels_sync_creates_every_label_then_changes_nothing_then_repairs(
    config: Path, demo_sim: RunningSim
) -> None:
    states = list(WORKFLOW.states.values())
    total = len(states)
    assert (
        run_cli(config, "labels", "sync").strip()
        == f"{PROJECT}: {total} created, 0 updated, 0 unchanged; control issue #1"
    )
    project = root(demo_sim).projects.get(PROJECT)
    labels = {label.name: label for label in project.labels.list(get_all=True)}
    for state in states:
        assert labels[state.label].color.lower() == state.color.lower(), state.name
        assert labels[state.label].description == state.description, state.name

    assert (
        run_cli(config, "labels", "sync").strip()
        == f"{PROJECT}: 0 created, 0 updated, {total} unchanged; control issue #1"
    )

    dev_ready = WORKFLOW.state("dev-ready")
    project.labels.update(dev_ready.label, {"color": "#000000"})
    assert (
        run_cli(config, "labels", "sync").strip()
        == f"{PROJECT}: 0 created, 1 updated, {total - 1} unchanged; control issue #1"
    )
    restored = next(x for x in project.labels.list(get_all=True) if x.name == dev_ready.label)
    assert restored.color.lower() == dev_ready.color.lower()


# ------------------------------------------------------------------ status


async def test_status_shows_states_what_waits_and_who_runs(
    config: Path, demo_sim: RunningSim, tmp_path: Path
) -> None:
    other = configure(demo_sim, tmp_path / "other-host", worker_id="host-x")
    async with runtime_for(demo_sim, other) as (runtime, _):
        first = file_by_hand(demo_sim, "First goal", "Something to do first.")
        waits = file_by_hand(demo_sim, "Waits", f"Depends on #{first}", state="dev-ready")
        running = file_by_hand(demo_sim, "Being planned", "Planned right now.")
        gated = file_by_hand(demo_sim, "Plan to review", "A plan waits.", state="plan-review")
        issue = await runtime.services.gateway.get_issue(PROJECT, running)
        assert await runtime.services.claims.claim(issue, "pm", "run-1") is not None

    text = run_cli(config, "status")
    lines = text.splitlines()
    assert lines[0].split("  ") == ["pm-ready 1", "pm-running 1", "plan-review 1", "dev-ready 1"]
    by_iid = {int(m.group(1)): line for line in lines[1:] if (m := re.match(r"\S+#(\d+)", line))}
    assert set(by_iid) == {first, waits, running, gated}
    assert by_iid[waits].endswith(f"wait: waiting for #{first} to be done")
    assert re.search(r"pm-running .*worker host-x, for \d+s, attempt 1$", by_iid[running])
    assert re.search(r"plan-review .*waiting for a human for \d+s$", by_iid[gated])
    assert by_iid[first].rstrip().endswith("First goal")  # ready and free to start: no detail

    board = json.loads(run_cli(config, "status", "--json"))
    assert {k: v for k, v in board["counts"].items() if v} == {
        "pm-ready": 1,
        "pm-running": 1,
        "plan-review": 1,
        "dev-ready": 1,
    }
    items = {item["iid"]: item for item in board["items"]}
    assert items[waits]["state"] == "dev-ready"
    assert items[waits]["detail"] == f"wait: waiting for #{first} to be done"
    assert re.fullmatch(r"worker host-x, for \d+s, attempt 1", items[running]["detail"])
    assert items[first]["detail"] == ""


# ------------------------------------------------------------------ worker and run


def test_worker_takes_a_goal_to_review_ready_and_stops_on_ctrl_c(
    config: Path, demo_sim: RunningSim
) -> None:
    run_cli(config, "labels", "sync")
    with background(config, "worker", "--auto-approve-plans", env=TOKEN_ENV) as worker:
        worker.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        iid = file_by_hand(demo_sim, GOALS[0].title, GOALS[0].description)
        wait_for_state(demo_sim, iid, "review-ready", worker)
        ends_cleanly(worker)
    assert "webhooks: listening" not in worker.output
    bodies = note_bodies(demo_sim, iid)
    assert any(f"Plan approved by {WORKER} via console (auto-approved)." in b for b in bodies)
    mrs = root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)
    assert [mr.description.splitlines()[0] for mr in mrs] == [f"Closes #{iid}"]


def test_sigterm_stops_a_worker_as_ctrl_c_does(config: Path, demo_sim: RunningSim) -> None:
    """systemd, docker stop and Kubernetes send SIGTERM: cleanup must run, exit 0."""
    with background(config, "worker", env=TOKEN_ENV) as worker:
        worker.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        ends_cleanly(worker, how=signal.SIGTERM)


@pytest.mark.slow
async def test_run_without_auto_approval_waits_at_plan_review_for_a_human(
    config: Path, demo_sim: RunningSim, tmp_path: Path
) -> None:
    run_cli(config, "labels", "sync")
    with background(config, "run", env=TOKEN_ENV) as crew:
        crew.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        iid = file_by_hand(demo_sim, GOALS[0].title, GOALS[0].description)
        await asyncio.to_thread(wait_for_state, demo_sim, iid, "plan-review", crew)
        await asyncio.to_thread(time.sleep, 2.5)  # two polls: nobody decides in its place
        assert state_of(demo_sim, iid) == "plan-review"
        status = run_cli(config, "status")
        assert re.search(rf"#{iid}\s+plan-review .*waiting for a human for \d+s", status)
        # A human approves (what Discord or the console would do for them).
        async with runtime_for(demo_sim, configure(demo_sim, tmp_path / "human")) as (rt, _):
            plan = await load_plan(rt.services.gateway, PROJECT, iid)
            assert plan is not None
            decision = await decide_plan(
                rt.services.gateway, rt.storage.leases, PROJECT, iid,
                revision=str(plan[0].id), approve=True, who="ada", via="a test",
                worker=rt.services.worker,
            )  # fmt: skip
            assert decision.applied, decision.message
        await asyncio.to_thread(wait_for_state, demo_sim, iid, "review-ready", crew)
        ends_cleanly(crew)
    assert "webhooks: listening" not in crew.output  # webhook.enabled = false


@pytest.mark.slow
def test_a_webhook_wakes_the_engine_before_the_next_poll(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim, poll=300, webhook=True)
    run_cli(config, "labels", "sync")
    env = {**TOKEN_ENV, "CREWLINE_WEBHOOK_SECRET": HOOK_SECRET}
    with background(config, "run", "--auto-approve-plans", env=env) as crew:
        url = crew.wait_for_line(r"webhooks: listening at (http://\S+)").group(1)
        crew.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        time.sleep(1)  # the engine's first pass is over; the next poll is 300 s away
        iid = file_by_hand(demo_sim, GOALS[0].title, GOALS[0].description)
        time.sleep(1.5)
        assert state_of(demo_sim, iid) == "pm-ready"  # nothing polls in the meantime

        hook = f"{url}/webhooks/gitlab"
        payload = issue_payload(iid)
        payload["project"]["path_with_namespace"] = PROJECT
        headers = {"X-Gitlab-Event": "Issue Hook", "X-Gitlab-Token": "not-the-secret"}
        assert requests.post(hook, json=payload, headers=headers, timeout=10).status_code == 401
        time.sleep(1)
        assert state_of(demo_sim, iid) == "pm-ready"  # a refused hook wakes nothing

        woken = time.monotonic()
        headers["X-Gitlab-Token"] = HOOK_SECRET
        assert requests.post(hook, json=payload, headers=headers, timeout=10).status_code == 202
        wait_for_state(demo_sim, iid, "review-ready", crew, timeout=60)
        assert time.monotonic() - woken < 60
        ends_cleanly(crew)


# ------------------------------------------------------------------ refusals


def test_run_with_webhooks_but_no_secret_exits_2_naming_it(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim, webhook=True)
    result = crewline("run", "--config", str(config), env=TOKEN_ENV)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CREWLINE_WEBHOOK_SECRET is not set" in result.stderr


@pytest.mark.parametrize("command", ["run", "worker", "status", "labels sync"])
def test_no_gitlab_token_exits_2_naming_it(config: Path, command: str) -> None:
    result = crewline(*command.split(), "--config", str(config), env={})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CREWLINE_GITLAB_TOKEN is not set" in result.stderr


def test_doctor_fails_on_a_command_agent_that_is_not_installed(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(
        tmp_path / "crewline.toml",
        demo_sim,
        agent="coder",
        extra_agents='\n[agents.coder]\nkind = "command"\ncommand = "no-such-coding-agent"\n',
    )
    # The workflow labels exist (doctor checks them too): the agent is the one failure.
    synced = crewline("labels", "sync", "--config", str(config), env=TOKEN_ENV)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    result = crewline("doctor", "--config", str(config), env=TOKEN_ENV)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "FAIL agent coder: 'no-such-coding-agent' is not on PATH" in result.stdout
    assert [line for line in lines if line.startswith("FAIL")] == [
        next(line for line in lines if "agent coder" in line)
    ]
