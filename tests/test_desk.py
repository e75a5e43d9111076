"""The desk against the simulator and real SQLite: goals and gate decisions, each authorised
through the identity map and GitLab access levels, audited, and idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.desk_base import DeskError
from bot.identity import NotAllowed
from sim.core.app import RunningSim
from tests.support.desk import (
    ALICE,
    BOB,
    NOBODY,
    RITA,
    actor,
    at_merge_ready,
    at_plan_review,
    audit_of,
    bodies,
    desk_for,
    new_issue,
    post_plan,
)
from tests.support.engine import PROJECT, root, state_of


async def test_file_goal_once_per_request(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        reply = await desk.file_goal(
            actor(ALICE),
            title="  Add   a greeting ",
            description="Say hello to the user.",
            criteria="- `python -m app` prints hello",
            request_id="interaction-1",
        )
        assert reply.changed and reply.message == "filed demo/app#1 at pm-ready: Add a greeting"
        again = await desk.file_goal(
            actor(ALICE),
            title="Add a greeting",
            description="",
            criteria="",
            request_id="interaction-1",
        )
        assert not again.changed and again.message == "already filed as demo/app#1"
        assert again.url == reply.url and reply.url.endswith("/demo/app/-/issues/1")
        assert await state_of(runtime, 1) == "pm-ready"
        assert await desk.filer(PROJECT, 1) == "alice"
        assert await audit_of(runtime, "demo/app#1") == [
            ("discord:1001 gitlab:alice", "desk.goal", "ok"),
            ("discord:1001 gitlab:alice", "desk.goal", "unchanged"),
        ]
    issues = root(sim).projects.get(PROJECT).issues.list(get_all=True)
    assert len(issues) == 1
    description = issues[0].description
    assert description.startswith("Say hello to the user.\n\n### Acceptance criteria\n\n- `python")
    assert description.endswith(
        "Filed by @alice via Discord.\n\n<!-- crewline:filer user=alice -->"
    )


async def test_filer_is_read_back_from_the_issue_on_another_host(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        await desk.file_goal(actor(BOB), title="T", description="D", criteria="", request_id="r")
        assert await desk.filer(PROJECT, 1) == "bob"  # from the issue: any host reads it
        direct = await new_issue(runtime)  # filed in GitLab, not through a surface
        assert await desk.filer(PROJECT, direct.iid) == "crewline-bot"


async def test_goal_refused_without_write_access(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        with pytest.raises(
            NotAllowed, match="@rita has Reporter access to demo/app; this needs Developer"
        ):
            await desk.file_goal(
                actor(RITA), title="T", description="", criteria="", request_id="1"
            )
        with pytest.raises(
            NotAllowed, match=r'"1099" = "<gitlab username>" under \[discord.identities\]'
        ):
            await desk.file_goal(
                actor(NOBODY), title="T", description="", criteria="", request_id="2"
            )
        with pytest.raises(
            DeskError, match="'other/app' is not a configured project: use one of demo/app"
        ):
            await desk.file_goal(
                actor(ALICE),
                title="T",
                description="",
                criteria="",
                project="other/app",
                request_id="3",
            )
        with pytest.raises(DeskError, match="a goal needs a title"):
            await desk.file_goal(
                actor(ALICE), title=" ", description="", criteria="", request_id="4"
            )
        assert await audit_of(runtime, PROJECT) == [
            ("discord:1003 gitlab:rita", "desk.goal", "denied"),
            ("discord:1099 gitlab:-", "desk.goal", "denied"),
        ]
    assert root(sim).projects.get(PROJECT).issues.list(get_all=True) == []


async def test_goal_with_a_secret_is_refused_with_the_reason(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, _):
        token = "glpat-" + "a1B2c3D4e5F6g7H8i9J0"
        with pytest.raises(DeskError, match="crewline refused to write this to GitLab"):
            await desk.file_goal(
                actor(ALICE),
                title="Rotate",
                description=f"use {token}",
                criteria="",
                request_id="s",
            )
    assert root(sim).projects.get(PROJECT).issues.list(get_all=True) == []


async def test_plan_approval_is_applied_once_and_says_who_was_first(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue, plan = await at_plan_review(runtime)
        first = await desk.decide(
            actor(ALICE), PROJECT, issue.iid, "plan", str(plan.id), approve=True
        )
        assert first.changed and first.message == "Plan approved by @alice via Discord."
        assert await state_of(runtime, issue.iid) == "dev-ready"
        second = await desk.decide(
            actor(BOB), PROJECT, issue.iid, "plan", str(plan.id), approve=True
        )
        assert not second.changed
        assert second.message.startswith("already decided at ")
        assert second.message.endswith(": Plan approved by @alice via Discord.")
        assert await state_of(runtime, issue.iid) == "dev-ready"
        notes = [b for b in await bodies(runtime, issue.iid) if "approved by" in b]
        assert len(notes) == 1
        assert await audit_of(runtime, f"{PROJECT}#{issue.iid}") == [
            ("discord:1001 gitlab:alice", "desk.decide.plan", "ok"),
            ("discord:1002 gitlab:bob", "desk.decide.plan", "unchanged"),
        ]


async def test_a_decision_on_an_older_plan_changes_nothing(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue, old = await at_plan_review(runtime)
        newer = await post_plan(runtime, issue.iid, attempt=2, summary="Print a nicer greeting.")
        stale = await desk.decide(
            actor(ALICE), PROJECT, issue.iid, "plan", str(old.id), approve=True
        )
        assert not stale.changed
        assert (
            stale.message == f"stale: plan {old.id} is not the newest plan of demo/app#{issue.iid}"
        )
        assert await state_of(runtime, issue.iid) == "plan-review"
        fresh = await desk.decide(
            actor(ALICE),
            PROJECT,
            issue.iid,
            "plan",
            str(newer.id),
            approve=False,
            feedback="Say hi.\nTwice.",
        )
        assert fresh.changed and fresh.message == "Plan changes requested by @alice via Discord."
        assert await state_of(runtime, issue.iid) == "pm-ready"
        decision = next(b for b in await bodies(runtime, issue.iid) if "changes requested" in b)
        assert "> Say hi.\n> Twice." in decision


async def test_decisions_need_the_role_and_the_access_level(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        issue, plan = await at_plan_review(runtime)
        revision = str(plan.id)
        with pytest.raises(NotAllowed, match="alice has none of the approver roles"):
            await desk.decide(
                actor(ALICE, approver=False), PROJECT, issue.iid, "plan", revision, approve=True
            )
        with pytest.raises(NotAllowed, match="Reporter access"):
            await desk.decide(actor(RITA), PROJECT, issue.iid, "plan", revision, approve=True)
        with pytest.raises(NotAllowed, match="not mapped to a GitLab user"):
            await desk.decide(actor(NOBODY), PROJECT, issue.iid, "plan", revision, approve=True)
        assert await state_of(runtime, issue.iid) == "plan-review"
        assert not any("approved" in body for body in await bodies(runtime, issue.iid))
        verdicts = [v for _, _, v in await audit_of(runtime, f"{PROJECT}#{issue.iid}")]
        assert verdicts == ["denied", "denied", "denied"]


async def test_no_roles_configured_means_access_level_alone_decides(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path, approver_role_ids=[], min_access_level=40) as (
        desk,
        runtime,
    ):
        issue, plan = await at_plan_review(runtime)
        with pytest.raises(
            NotAllowed, match="@alice has Developer access to demo/app; this needs Maintainer"
        ):
            await desk.decide(
                actor(ALICE, approver=False), PROJECT, issue.iid, "plan", str(plan.id), approve=True
            )
        reply = await desk.decide(
            actor(BOB, approver=False), PROJECT, issue.iid, "plan", str(plan.id), approve=True
        )
        assert reply.changed and await state_of(runtime, issue.iid) == "dev-ready"


async def test_merge_needs_a_second_person_and_the_newest_head(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with desk_for(sim, tmp_path, repo=True) as (desk, runtime):
        await desk.file_goal(
            actor(ALICE), title="Greet", description="D", criteria="", request_id="r"
        )
        mr = await at_merge_ready(runtime, 1)
        own = await desk.decide(actor(ALICE), PROJECT, 1, "merge", mr.sha, approve=True)
        assert (
            not own.changed and own.message == "@alice filed this goal and cannot approve its merge"
        )
        stale = await desk.decide(actor(BOB), PROJECT, 1, "merge", "0" * 40, approve=True)
        assert not stale.changed and stale.message.startswith(f"stale: !{mr.iid} is now at ")
        assert await state_of(runtime, 1) == "merge-ready"
        merged = await desk.decide(actor(BOB), PROJECT, 1, "merge", mr.sha, approve=True)
        assert merged.changed
        assert (
            merged.message
            == f"Merge of !{mr.iid} at `{mr.sha[:10]}` approved by @bob via Discord. Merged."
        )
        assert await state_of(runtime, 1) == "done"
        again = await desk.decide(actor(BOB), PROJECT, 1, "merge", mr.sha, approve=True)
        assert not again.changed and again.message.startswith("already decided at ")
        assert [
            verdict
            for _, what, verdict in await audit_of(runtime, f"{PROJECT}#1")
            if what == "desk.decide.merge"
        ] == [
            "unchanged",
            "unchanged",
            "ok",
            "unchanged",
        ]
    assert root(sim).projects.get(PROJECT).mergerequests.get(mr.iid).state == "merged"


async def test_parse_ref_and_project_keys(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, _):
        assert desk.parse_ref("demo/app#12") == (PROJECT, 12)
        assert desk.parse_ref("#7") == (PROJECT, 7)
        assert desk.parse_ref(" 3 ") == (PROJECT, 3)
        assert desk.parse_ref("https://gitlab.example.com/demo/app/-/issues/42") == (PROJECT, 42)
        with pytest.raises(DeskError, match="names no issue"):
            desk.parse_ref("the third one")
        issue = await new_issue(desk.runtime)
        assert desk.gate_of("plan-review") == "plan" and desk.gate_of("merge-ready") == "merge"
        assert desk.gate_of("dev-ready") is None and issue.iid == 1
