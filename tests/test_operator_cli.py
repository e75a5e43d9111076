"""`crewline approve` and `crewline request-changes` as real subprocesses: the host's
operator decides whichever gate an issue waits at, through the same gate rules, audited as
``operator:<login>``; a 👍 on a plan revision that is no longer the newest does nothing."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import gitlab
from pydantic import SecretStr

from bot.app import build_runtime
from bot.config import Secrets, load_config
from bot.demo_goals import GOALS
from roles.notify import EventLog
from sim.core.app import RunningSim
from sim.core.base import MAINTAINER
from tests.support.cli import TOKEN_ENV, write_config
from tests.support.engine import (
    PROJECT,
    configure,
    file_goal,
    note_bodies,
    reach,
    root,
    runtime_for,
    state_of,
)
from tests.support.review_merge import greet_goal, issue_mr
from tests.support.sim_issues import add_user
from tests.test_cli import crewline
from tests.test_gitlab_gates import gitlab_only, plan_note_ids, react


async def cli(config: Path, *args: str, env: dict[str, str] = TOKEN_ENV) -> tuple[int, str]:
    done = await asyncio.to_thread(crewline, *args, "--config", str(config), env=env)
    return done.returncode, (done.stdout + done.stderr).strip()


async def test_the_operator_requests_changes_then_approves_on_the_command_line(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    login = getpass.getuser()
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    alice_token = add_user(demo_sim, "alice", root(demo_sim).projects.get(PROJECT).id, MAINTAINER)
    alice = gitlab.Gitlab(demo_sim.base_url, private_token=alice_token).projects.get(PROJECT)
    events = EventLog()
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path / "engine")) as (runtime, _):
        runtime.services.desk = events  # nothing decides but the operator and GitLab
        goal = GOALS[0]
        issue = await file_goal(runtime, goal.title, goal.description)

        code, said = await cli(config, "approve", PROJECT, str(issue.iid))
        assert code == 1 and said == f"{issue.ref} waits at no gate (it is at pm-ready)"
        refused = await asyncio.to_thread(
            crewline, "request-changes", PROJECT, str(issue.iid), "--feedback", "  ",
            "--config", str(config), env=TOKEN_ENV,
        )  # fmt: skip
        assert refused.returncode == 2 and "--feedback must not be empty" in refused.stderr

        await reach(runtime, {issue.iid: "plan-review"})
        [first] = plan_note_ids(demo_sim, issue.iid)
        code, said = await cli(
            config, "request-changes", PROJECT, str(issue.iid), "--feedback", "Keep it short"
        )
        assert code == 0, said
        assert said == f"Plan changes requested by operator:{login} via the command line."
        assert await state_of(runtime, issue.iid) == "pm-ready"

        await reach(runtime, {issue.iid: "plan-review"})
        [_, newest] = plan_note_ids(demo_sim, issue.iid)
        react(alice, issue.iid, first)  # a 👍 on the rejected revision
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "plan-review"

        code, said = await cli(config, "approve", PROJECT, str(issue.iid))
        assert code == 0 and said == f"Plan approved by operator:{login} via the command line."
        assert await state_of(runtime, issue.iid) == "dev-ready"
        react(alice, issue.iid, newest)  # too late: decided, nothing changes
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "dev-ready"

    bodies = note_bodies(demo_sim, issue.iid)
    assert sum(body.startswith("Plan approved by") for body in bodies) == 1
    assert any("> Keep it short" in body for body in bodies)
    secrets = Secrets(gitlab_token=SecretStr(demo_sim.config.bot_token))
    host = await build_runtime(load_config(config), secrets, notifier=EventLog())
    try:
        entries = await host.storage.audit.for_target(issue.ref, limit=50)
    finally:
        await host.close()
    decided = [(e.who, e.what, e.verdict) for e in reversed(entries) if e.what.startswith("desk.")]
    assert decided == [
        (f"operator:{login}", "desk.decide.plan", "ok"),
        (f"operator:{login}", "desk.decide.plan", "ok"),
    ]


async def test_the_operator_approves_a_merge_and_crewline_merges_with_its_merge_identity(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    login = getpass.getuser()
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    env = {**TOKEN_ENV, "CREWLINE_GITLAB_MERGE_TOKEN": demo_sim.config.maintainer_token}
    async with gitlab_only(demo_sim, tmp_path / "engine") as runtime:
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "plan-review"})
        assert (await cli(config, "approve", PROJECT, str(issue.iid), env=env))[0] == 0
        await reach(runtime, {issue.iid: "merge-ready"}, limit=120)
        head = issue_mr(demo_sim, issue.iid).sha
        code, said = await cli(config, "approve", PROJECT, str(issue.iid), env=env)
        assert code == 0, said
        assert said == (
            f"Merge of !{issue_mr(demo_sim, issue.iid).iid} at `{head[:10]}` approved by "
            f"operator:{login} via the command line. Merged."
        )
        assert await state_of(runtime, issue.iid) == "done"
    merged = issue_mr(demo_sim, issue.iid)
    assert merged.state == "merged" and merged.merged_by["username"] == "maintainer"
