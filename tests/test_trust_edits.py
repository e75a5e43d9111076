"""Descriptions crewline wrote stop counting once someone else edits them (SPEC §7).

An issue crewline filed keeps its hidden markers only while the newest "changed the
description" system note, if any, is by one of crewline's users: GitLab's REST issue names
no last editor, its system note does (and the simulator writes it as GitLab does). Real HTTP
between python-gitlab and the simulator, another user's token."""

from __future__ import annotations

from pathlib import Path

import gitlab

from bot.desk_work import goal_body, record_filer
from forge.trust import FORGED
from roles.flaky.detect import Candidate
from roles.flaky.filing import Filer, rerun_marker, rerun_of
from roles.gates.decide import filer_marker, filer_of
from roles.gates.desk_rules import second_person_refusal
from sim.core.app import RunningSim
from sim.core.base import DEVELOPER
from tests.support.forge import PROJECT, gateway_for, make_project
from tests.support.sim_issues import add_user
from tests.test_trust_forged import forged_rows
from workflow import flaky_workflow

TEST = "tests/test_app.py::test_greets"


def developer(sim: RunningSim) -> gitlab.Gitlab:
    project_id = make_project(sim)
    token = add_user(sim, "mallory", project_id, DEVELOPER)
    return gitlab.Gitlab(sim.base_url, private_token=token)


def edit_description(other: gitlab.Gitlab, iid: int, text: str) -> None:
    issue = other.projects.get(PROJECT, lazy=True).issues.get(iid)
    issue.description = text
    issue.save()


async def test_the_simulator_says_who_edited_a_description_as_gitlab_does(
    sim: RunningSim, tmp_path: Path
) -> None:
    mallory = developer(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Mine", "first")
        assert await gateway.description_editor(PROJECT, issue.iid) is None
        edit_description(mallory, issue.iid, "second")
        editor = await gateway.description_editor(PROJECT, issue.iid)
        assert editor is not None and editor[1] == "mallory"
        notes = mallory.projects.get(PROJECT, lazy=True).issues.get(issue.iid).notes.list()
        edits = [n for n in notes if n.system and n.body == "changed the description"]
        assert [n.author["username"] for n in edits] == ["mallory"]
        # crewline writing the description again makes it crewline's once more.
        await gateway.update_issue(PROJECT, issue.iid, description="third")
        editor = await gateway.description_editor(PROJECT, issue.iid)
        assert editor is not None and editor[0] in await gateway.trust.own()


async def test_a_flaky_issue_edited_by_a_developer_cannot_retarget_the_rerun(
    sim: RunningSim, tmp_path: Path
) -> None:
    mallory = developer(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        filer = Filer(gateway, flaky_workflow(), "flaky-test")
        candidate = Candidate(TEST, "fp", excused=True, rerun_pipeline=7, rerun_job="unit")
        report = await filer.file(PROJECT, [candidate], {})
        iid = int(report.filed[0].split("#")[1])
        filed = await gateway.get_issue(PROJECT, iid)
        rerun = rerun_of(filed)
        assert rerun is not None and (rerun.pipeline, rerun.job) == (7, "unit")

        # mallory points the rerun at a deploy job of another pipeline.
        evil = Candidate(TEST, "fp", excused=True, rerun_pipeline=99, rerun_job="deploy-prod")
        edited = filed.description.replace(rerun_marker(candidate), rerun_marker(evil))
        edit_description(mallory, iid, edited)

        seen = await gateway.get_issue(PROJECT, iid)
        assert rerun_of(seen) is None
        assert FORGED in seen.description
        [listed] = [i for i in await gateway.list_issues(PROJECT, state="all") if i.iid == iid]
        assert rerun_of(listed) is None
        # The issue is no longer the test's issue either: its key went with the edit.
        assert await filer.issues_by_key(PROJECT) == {}
        assert await forged_rows(storage, f"{PROJECT}#{iid}/description") == ["forged"]


async def test_a_goal_edited_by_a_developer_loses_the_filer_it_names(
    sim: RunningSim, tmp_path: Path
) -> None:
    mallory = developer(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        filed = await gateway.create_issue(PROJECT, "Goal", goal_body("x", "", "alice", "discord"))
        ours = await gateway.get_issue(PROJECT, filed.iid)
        assert filer_of(ours.description, ours.author) == "alice"
        edit_description(mallory, filed.iid, filed.description.replace("alice", "bob"))
        seen = await gateway.get_issue(PROJECT, filed.iid)
        # No filer marker counts: the filer is the issue's author (crewline), never bob.
        assert filer_of(seen.description, seen.author) == seen.author


async def test_editing_a_goal_does_not_lift_the_second_person_rule(
    sim: RunningSim, tmp_path: Path
) -> None:
    mallory = developer(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        # Filed for alice through a surface, as the desk does: the body and the filer note.
        filed = await gateway.create_issue(PROJECT, "Goal", goal_body("x", "", "alice", "discord"))
        await record_filer(gateway, PROJECT, filed.iid, "alice", "discord")
        # Someone drops the marker from the description (alice herself, or a friend).
        edit_description(mallory, filed.iid, "x")
        seen = await gateway.get_issue(PROJECT, filed.iid)
        notes = await gateway.notes(PROJECT, filed.iid)
        assert filer_of(seen.description, seen.author, notes) == "alice"
        assert second_person_refusal(
            filer_of(seen.description, seen.author, notes), "alice", True
        ) == ("@alice filed this goal and cannot approve its merge")
        # A filer note by anyone else names nobody.
        mallory.projects.get(PROJECT, lazy=True).issues.get(filed.iid, lazy=True).notes.create(
            {"body": f"{filer_marker('bob')} <!-- crewline:note key=filer -->"}
        )
        notes = await gateway.notes(PROJECT, filed.iid)
        assert filer_of(seen.description, seen.author, notes) == "alice"


async def test_a_title_never_carries_a_marker(sim: RunningSim, tmp_path: Path) -> None:
    mallory = developer(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        ours = await gateway.create_issue(PROJECT, "Greet", "say hello")
        issue = mallory.projects.get(PROJECT, lazy=True).issues.get(ours.iid)
        issue.title = "Greet <!-- crewline:note key=pm-1:plan -->"
        issue.save()
        seen = await gateway.get_issue(PROJECT, ours.iid)
        assert seen.title == f"Greet {FORGED}"
