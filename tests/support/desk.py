"""Set-up for desk and Discord tests: the simulator with a project and people at several
GitLab access levels, a crewline runtime on real SQLite, and the desk over it; helpers that
walk an issue to a given state the way the engine would (labels, keyed notes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gitlab
from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import Secrets
from bot.desk import Desk
from bot.identity import Actor, Identities
from bot.settings import DiscordSettings
from forge.claims import ClaimMarker
from forge.labels import sync_labels
from forge.sink import seal
from forge.types import Issue, MergeRequest, Note
from roles.mr_link import mr_marker
from roles.notify import EventLog
from roles.pm.plan import Plan
from roles.pm.role import question_key
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, state_of
from tests.support.forge import make_project
from tests.support.sim_issues import add_user
from tests.support.sim_mr import make_repo

ALICE, BOB, RITA, NOBODY = 1001, 1002, 1003, 1099
APPROVER = 77
PEOPLE = {ALICE: ("alice", 30), BOB: ("bob", 40), RITA: ("rita", 20)}


def discord_settings(**changes: Any) -> DiscordSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "guild_id": 500,
        "approvals_channel_id": 600,
        "status_channel_id": 700,
        "approver_role_ids": [APPROVER],
        "identities": {str(key): name for key, (name, _) in PEOPLE.items()},
        "min_access_level": 30,
    }
    values.update(changes)
    return DiscordSettings(**values)


def actor(discord_id: int, *, approver: bool = True) -> Actor:
    name = PEOPLE.get(discord_id, ("stranger", 0))[0]
    return Actor(discord_id, name, frozenset({APPROVER} if approver else set()))


@asynccontextmanager
async def desk_for(
    sim: RunningSim, base: Path, *, repo: bool = False, **discord: Any
) -> AsyncIterator[tuple[Desk, Runtime]]:
    """The desk over ``demo/app`` (with a git repository and a protected main when
    ``repo``); the maintainer's token is the merge identity, as `crewline demo` sets it."""
    project_id = int(make_repo(sim).root.id) if repo else make_project(sim)
    for name, level in PEOPLE.values():
        add_user(sim, name, project_id, level)
    config = configure(sim, base, discord=discord_settings(**discord))
    secrets = Secrets(
        gitlab_token=SecretStr(sim.config.bot_token),
        gitlab_merge_token=SecretStr(sim.config.maintainer_token),
    )
    runtime = await build_runtime(config, secrets, notifier=EventLog())
    try:
        await sync_labels(runtime.services.gateway, PROJECT)
        identities = Identities(config.discord, runtime.services.gateway.member_access_level)
        yield Desk(runtime, identities), runtime
    finally:
        await runtime.close()


async def at_merge_ready(runtime: Runtime, iid: int) -> MergeRequest:
    """The developer's work on a branch with an MR named in its handoff, waiting for a
    human's merge decision (needs ``desk_for(..., repo=True)``)."""
    branch = f"crewline/{iid}-greet"
    repo = client(runtime, "sim-root-token")
    repo.commits.create(
        {
            "branch": branch,
            "start_branch": "main",
            "commit_message": "Greet",
            "actions": [{"action": "create", "file_path": "greet.py", "content": "print('hi')\n"}],
        }
    )
    merges = runtime.services.gateway.merges
    mr = await merges.ensure_mr(
        PROJECT,
        source_branch=branch,
        target_branch="main",
        title=f"Greet #{iid}",
        description=f"Closes #{iid}",
        draft=False,
    )
    await runtime.services.gateway.upsert_note(
        PROJECT, iid, "dev-1:handoff", f"### Handoff\n\n{seal(mr_marker(mr.iid, branch))}"
    )
    await walk(runtime, iid, "merge-ready")
    return await merges.get_mr(PROJECT, mr.iid)


def client(runtime: Runtime, token: str) -> Any:
    return gitlab.Gitlab(runtime.config.gitlab.url, private_token=token).projects.get(PROJECT)


async def new_issue(
    runtime: Runtime, title: str = "Add a greeting", description: str = ""
) -> Issue:
    wf = runtime.services.workflow
    return await runtime.services.gateway.create_issue(
        PROJECT, title, description or "Say hello.", [wf.state(wf.entry).label]
    )


async def walk(runtime: Runtime, iid: int, *states: str) -> None:
    """Move the issue through ``states`` in order (each move is a label event)."""
    for state in states:
        await runtime.services.gateway.transition(PROJECT, iid, state)
    assert await state_of(runtime, iid) == states[-1]


def plan(summary: str = "Print a greeting.") -> Plan:
    return Plan(
        summary=summary,
        steps=["Add greet()"],
        acceptance=["python -m unittest"],
        owned_paths=["app/**"],
    )


async def post_plan(runtime: Runtime, iid: int, attempt: int = 1, summary: str = "Hi.") -> Note:
    return await runtime.services.gateway.upsert_note(
        PROJECT, iid, f"pm-{attempt}:plan", plan(summary).to_markdown()
    )


async def at_plan_review(runtime: Runtime, issue: Issue | None = None) -> tuple[Issue, Note]:
    """An issue whose PM run posted a plan and handed it to the plan gate."""
    issue = issue or await new_issue(runtime)
    await walk(runtime, issue.iid, "pm-running")
    note = await post_plan(runtime, issue.iid)
    await walk(runtime, issue.iid, "plan-review")
    return issue, note


async def ask(runtime: Runtime, iid: int, run: str, text: str) -> Note:
    """An agent's question, as the PM role posts it (keyed by the run that asked)."""
    return await runtime.services.gateway.upsert_note(PROJECT, iid, question_key(run), text)


async def claim_note(runtime: Runtime, iid: int, role: str, *, expired: bool) -> Note:
    """A claim note as a worker posts it; ``expired``: its worker stopped renewing it."""
    shift = timedelta(minutes=-5 if expired else 30)
    marker = ClaimMarker("gone-host", "run1", role, datetime.now(UTC) + shift)
    return await runtime.services.gateway.post_note(PROJECT, iid, marker.body())


async def bodies(runtime: Runtime, iid: int) -> list[str]:
    return [note.body for note in await runtime.services.gateway.notes(PROJECT, iid)]


async def audit_of(runtime: Runtime, target: str) -> list[tuple[str, str, str]]:
    """(who, what, verdict) of the desk's entries about ``target``, oldest first."""
    entries = await runtime.storage.audit.for_target(target, limit=500)
    return [(e.who, e.what, e.verdict) for e in reversed(entries) if e.what.startswith("desk.")]
