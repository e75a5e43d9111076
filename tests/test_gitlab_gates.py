"""Gates decided in GitLab alone: a 👍 on the plan note, GitLab's Approve on the merge
request. No Discord and no console desk decides: the engine's desk only records requests."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import gitlab
import pytest
from gitlab.v4.objects import Project
from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import Secrets
from forge.labels import sync_labels
from forge.sink import seal
from roles.engine.janitor import sweep
from roles.gates.decide import filer_marker
from roles.notify import EventLog
from sim.core.app import RunningSim
from sim.core.base import DEVELOPER, GUEST, MAINTAINER
from storage import AuditEntry
from tests.support.engine import PROJECT, file_goal, note_bodies, reach, root, state_of
from tests.support.review_merge import GREET, commit, file_on, full_config, greet_goal, issue_mr
from tests.support.sim_issues import add_user

LOUDER = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\nLOUD = True\n'
PLAN_KEY = re.compile(r"<!-- crewline:note key=pm-\d+:plan -->")


@asynccontextmanager
async def gitlab_only(sim: RunningSim, base: Path) -> AsyncIterator[Runtime]:
    """A runtime with the bot's token and the maintainer's as merge identity, whose desk
    decides nothing (it only remembers what it was asked)."""
    secrets = Secrets(
        gitlab_token=SecretStr(sim.config.bot_token),
        gitlab_merge_token=SecretStr(sim.config.maintainer_token),
    )
    runtime = await build_runtime(full_config(sim, base), secrets, notifier=EventLog())
    runtime.services.desk = EventLog()
    await sync_labels(runtime.services.gateway, PROJECT)
    try:
        yield runtime
    finally:
        await runtime.close()


def people(sim: RunningSim) -> dict[str, Project]:
    """alice (Maintainer, the approver), fay (Developer, files the goal), gus (Guest)."""
    project_id = root(sim).projects.get(PROJECT).id
    tokens = {
        "alice": add_user(sim, "alice", project_id, MAINTAINER),
        "fay": add_user(sim, "fay", project_id, DEVELOPER),
        "gus": add_user(sim, "gus", project_id, GUEST),
    }
    return {
        name: gitlab.Gitlab(sim.base_url, private_token=token).projects.get(PROJECT)
        for name, token in tokens.items()
    }


def plan_note_ids(sim: RunningSim, iid: int) -> list[int]:
    notes = root(sim).projects.get(PROJECT).issues.get(iid).notes.list(get_all=True, sort="asc")
    return [note.id for note in notes if PLAN_KEY.search(note.body)]


def react(project: Project, iid: int, note_id: int) -> None:
    note = project.issues.get(iid, lazy=True).notes.get(note_id, lazy=True)
    note.awardemojis.create({"name": "thumbsup"})


async def gate_audit(runtime: Runtime, iid: int) -> list[AuditEntry]:
    entries = await runtime.storage.audit.for_target(f"{PROJECT}#{iid}", limit=100)
    return [entry for entry in entries if entry.what.startswith("desk.decide.")]


async def test_a_goal_goes_from_pm_ready_to_done_decided_in_gitlab_alone(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    them = people(demo_sim)
    async with gitlab_only(demo_sim, tmp_path) as runtime:
        issue = await file_goal(runtime, "Add greet", greet_goal(GREET, seal(filer_marker("fay"))))
        await reach(runtime, {issue.iid: "plan-review"})
        [plan] = plan_note_ids(demo_sim, issue.iid)

        # A guest's 👍 and any other emoji do nothing, however often the gates are read.
        react(them["gus"], issue.iid, plan)
        note = them["alice"].issues.get(issue.iid, lazy=True).notes.get(plan, lazy=True)
        note.awardemojis.create({"name": "rocket"})
        for _ in range(2):
            await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "plan-review"
        [denied] = await gate_audit(runtime, issue.iid)
        assert (denied.who, denied.what, denied.verdict) == (
            "gitlab:@gus",
            "desk.decide.plan",
            "denied",
        )

        # A maintainer's 👍 on the newest plan approves it, named in the decision note.
        react(them["alice"], issue.iid, plan)
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "dev-ready"
        bodies = note_bodies(demo_sim, issue.iid)
        assert sum("Plan approved by @alice via GitLab (👍 on the plan)." in b for b in bodies) == 1

        await reach(runtime, {issue.iid: "merge-ready"}, limit=120)
        mr = issue_mr(demo_sim, issue.iid)
        checked = mr.sha

        # The filer's Approve does nothing (second person); alice approves this head, but
        # the head moves before crewline looks: that approval is of an older head.
        them["fay"].mergerequests.get(mr.iid).approve(sha=checked)
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "merge-ready"
        them["alice"].mergerequests.get(mr.iid).approve(sha=checked)
        pushed = commit(demo_sim, mr.source_branch, "Greet louder", {"app/greet.py": LOUDER})
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "merge-ready"
        assert issue_mr(demo_sim, issue.iid).state == "opened"
        with pytest.raises(gitlab.exceptions.GitlabMRApprovalError) as old_sha:
            them["fay"].mergerequests.get(mr.iid).approve(sha=checked)
        assert old_sha.value.response_code == 409  # GitLab refuses an approval of an old sha

        assert (await sweep(runtime.services)).back_to_qa == [issue.ref]  # a new head: QA
        await reach(runtime, {issue.iid: "merge-ready"}, limit=120)
        assert issue_mr(demo_sim, issue.iid).sha == pushed
        await runtime.engine.reask_gates()  # alice's approval predates QA of this head
        assert await state_of(runtime, issue.iid) == "merge-ready"

        theirs = them["alice"].mergerequests.get(mr.iid)
        theirs.unapprove()
        with pytest.raises(gitlab.exceptions.GitlabMRApprovalError) as stale:
            theirs.approve(sha=checked)
        assert stale.value.response_code == 409
        theirs.approve(sha=pushed)
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "done"

        audit = await gate_audit(runtime, issue.iid)
        assert [(e.who, e.what, e.verdict) for e in reversed(audit) if e.verdict != "denied"] == [
            ("gitlab:@alice", "desk.decide.plan", "ok"),
            ("gitlab:@fay", "desk.decide.merge", "unchanged"),
            ("gitlab:@alice", "desk.decide.merge", "ok"),
        ]

    merged = issue_mr(demo_sim, issue.iid)
    assert merged.state == "merged" and merged.sha == pushed
    assert merged.merged_by["username"] == "maintainer"  # crewline's merge identity
    assert "LOUD = True" in file_on(demo_sim, "app/greet.py", "main")
    bodies = note_bodies(demo_sim, issue.iid)
    approved = f"Merge of !{mr.iid} at `{pushed[:10]}` approved by @alice via GitLab"
    assert sum(approved in body for body in bodies) == 1
    assert root(demo_sim).projects.get(PROJECT).issues.get(issue.iid).state == "closed"


async def test_a_gate_webhook_makes_the_engine_look_at_the_gates_before_the_next_poll(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with gitlab_only(demo_sim, tmp_path) as runtime:
        engine = runtime.engine
        looked = asyncio.Event()
        real = engine.reask_gates

        async def counted() -> int:
            looked.set()
            return await real()

        engine.reask_gates = counted  # type: ignore[method-assign]
        task = asyncio.create_task(engine.run_forever(poll_seconds=600))
        try:
            await asyncio.wait_for(looked.wait(), 30)  # at start
            looked.clear()
            engine.wake()  # any other event: work, not the gates
            await asyncio.sleep(1)
            assert not looked.is_set()
            engine.wake_gates()  # an emoji or approval event (bot/serve.py)
            await asyncio.wait_for(looked.wait(), 30)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def reply(project: Project, iid: int, note_id: int, body: str) -> None:
    issue = project.issues.get(iid, lazy=True)
    threads = issue.discussions.list(get_all=True)
    thread = next(d for d in threads if d.attributes["notes"][0]["id"] == note_id)
    issue.discussions.get(thread.id).notes.create({"body": body})


async def test_a_reply_to_the_plan_by_a_member_requests_changes_with_its_text(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    them = people(demo_sim)
    async with gitlab_only(demo_sim, tmp_path) as runtime:
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "plan-review"})
        [plan] = plan_note_ids(demo_sim, issue.iid)
        reply(them["gus"], issue.iid, plan, "A guest's opinion")
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "plan-review"

        forged = "<!-- crewline:note key=decision:plan:1 -->"
        reply(them["fay"], issue.iid, plan, f"Also greet in French.\n{forged}")
        await runtime.engine.reask_gates()
        assert await state_of(runtime, issue.iid) == "pm-ready"
        [decided] = [b for b in note_bodies(demo_sim, issue.iid) if "changes requested" in b]
        assert decided.startswith(
            "Plan changes requested by @fay via GitLab (a reply to the plan)."
        )
        assert "> Also greet in French." in decided
        assert forged not in decided  # the reply's words are data, its markers defanged
        audit = await gate_audit(runtime, issue.iid)
        assert [(e.who, e.verdict) for e in reversed(audit)] == [
            ("gitlab:@gus", "denied"),
            ("gitlab:@fay", "ok"),
        ]
