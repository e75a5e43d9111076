"""The gateway against the simulator over real HTTP: issues, labels, notes, MRs, errors,
retries, the guard and the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from forge.client import ForgeNotFound, ForgeUnavailable, RetryPolicy
from forge.gateway import StaleState
from forge.guard import GuardBlocked
from sim.core.app import RunningSim
from tests.support.forge import PROJECT, admin, gateway_for, make_project


def label(state: str) -> str:
    return f"workflow::{state}"


async def test_create_list_ready_and_transition(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        first = await gateway.create_issue(
            PROJECT, "Add a greeting", "Say hello", [label("pm-ready"), "team::core"]
        )
        await gateway.create_issue(PROJECT, "Other", "", [label("dev-ready")])
        ready = await gateway.list_ready(PROJECT, "pm")
        assert [issue.iid for issue in ready] == [first.iid]
        moved = await gateway.transition(PROJECT, first.iid, "pm-running", expect={"pm-ready"})
        assert sorted(moved.labels) == sorted([label("pm-running"), "team::core"])
        assert await gateway.list_ready(PROJECT, "pm") == []
        with pytest.raises(StaleState) as stale:
            await gateway.transition(PROJECT, first.iid, "pm-running", expect={"pm-ready"})
        assert stale.value.actual == "pm-running"
        entries = await storage.audit.for_target(f"{PROJECT}#{first.iid}")
        assert {"gitlab.issue.get", "gitlab.issue.update"} <= {entry.what for entry in entries}


async def test_blocked_by_names_blockers_in_the_same_project_only(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    make_project(sim, "other/lib")
    project, other = admin(sim).projects.get(PROJECT), admin(sim).projects.get("other/lib")
    waiting, blocker, related = (project.issues.create({"title": t}) for t in "abc")
    for filler in range(3):
        other.issues.create({"title": f"filler {filler}"})
    far = other.issues.create({"title": "in another project"})  # iid 4: none such here
    links = project.issues.get(waiting.iid, lazy=True).links
    for target, iid, kind in (
        (PROJECT, blocker.iid, "is_blocked_by"),
        (PROJECT, related.iid, "relates_to"),
        ("other/lib", far.iid, "is_blocked_by"),
    ):
        links.create({"target_project_id": target, "target_issue_iid": iid, "link_type": kind})
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        assert await gateway.blocked_by(PROJECT, waiting.iid) == [blocker.iid]
        assert await gateway.blocked_by(PROJECT, blocker.iid) == []  # it blocks, it waits for none
        assert await gateway.blocked_by(PROJECT, related.iid) == []


async def test_transition_repairs_two_workflow_labels_on_free_tier(
    free_sim: RunningSim, tmp_path: Path
) -> None:
    make_project(free_sim)
    async with gateway_for(free_sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(
            PROJECT, "Twice labelled", "", [label("dev-ready"), label("qa-ready")]
        )
        assert (
            len([lab for lab in issue.labels if lab.startswith("workflow::")]) == 2
        )  # Free keeps both
        repaired = await gateway.transition(PROJECT, issue.iid, "dev-running")
        assert [lab for lab in repaired.labels if lab.startswith("workflow::")] == [
            label("dev-running")
        ]


async def test_upsert_note_is_find_or_create(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Notes", "", [])
        first = await gateway.upsert_note(PROJECT, issue.iid, "run-1:plan", "The plan")
        again = await gateway.upsert_note(PROJECT, issue.iid, "run-1:plan", "The plan")
        other = await gateway.upsert_note(PROJECT, issue.iid, "run-1:handoff", "Handoff")
        assert first.id == again.id != other.id
        bodies = [note.body for note in await gateway.notes(PROJECT, issue.iid) if not note.system]
        assert sum("crewline:note key=run-1:plan" in body for body in bodies) == 1
        assert len(bodies) == 2


async def test_quick_actions_are_neutralised_in_notes(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Quick", "", [])
        note = await gateway.post_note(PROJECT, issue.iid, "Done.\n/close\n/label ~x")
        assert "\n/close" not in note.body and "\n/label" not in note.body
        assert (await gateway.get_issue(PROJECT, issue.iid)).state == "opened"


async def test_guard_blocks_a_secret_and_nothing_is_written(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Secret", "", [])
        token = "glpat-" + "Ab3dE6gH9jK2mN5pQ8sT"
        with pytest.raises(GuardBlocked) as blocked:
            await gateway.post_note(PROJECT, issue.iid, f"here is the token {token}")
        assert blocked.value.rule.startswith("secret.")
        assert token not in str(blocked.value)
        assert [n for n in await gateway.notes(PROJECT, issue.iid) if not n.system] == []
        with pytest.raises(GuardBlocked):
            await gateway.post_note(PROJECT, issue.iid, "leaking sim-bot-token here")
        verdicts = [
            entry.verdict for entry in await storage.audit.for_target(f"{PROJECT}#{issue.iid}")
        ]
        assert sum(v.startswith("blocked:") for v in verdicts) == 2


async def test_missing_issue_is_a_typed_error_and_audited(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        with pytest.raises(ForgeNotFound) as error:
            await gateway.get_issue(PROJECT, 999)
        assert error.value.status == 404 and "not found" in error.value.message.lower()
        entries = await storage.audit.for_target(f"{PROJECT}#999")
        assert [entry.verdict for entry in entries] == ["error:404"]


def inject(sim: RunningSim, **fault: object) -> None:
    response = requests.post(
        f"{sim.base_url}/api/v4/_sim/faults",
        json=fault,
        headers={"PRIVATE-TOKEN": "sim-root-token"},
        timeout=5,
    )
    assert response.status_code in (200, 201), response.text


async def test_transient_errors_are_retried_then_succeed(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    async with gateway_for(sim, tmp_path / "db.sqlite3", sleep=record) as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "Flaky API", "", [])
        inject(sim, method="GET", path_regex=r".*/issues/\d+$", status=503, rate=1.0, count=2)
        assert (await gateway.get_issue(PROJECT, issue.iid)).iid == issue.iid
        assert len(delays) == 2
        inject(
            sim,
            method="GET",
            path_regex=r".*/issues/\d+$",
            status=429,
            rate=1.0,
            count=1,
            retry_after=3,
        )
        await gateway.get_issue(PROJECT, issue.iid)
        assert delays[-1] >= 3.0  # Retry-After is a floor


async def test_persistent_errors_give_up_within_the_budget(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    retry = RetryPolicy(max_retries=2, budget_seconds=30, base_delay=0.01)
    async with gateway_for(sim, tmp_path / "db.sqlite3", retry=retry) as (gateway, storage):
        issue = await gateway.create_issue(PROJECT, "Down", "", [])
        inject(sim, method="GET", path_regex=r".*/issues/\d+$", status=502, rate=1.0)
        with pytest.raises(ForgeUnavailable) as error:
            await gateway.get_issue(PROJECT, issue.iid)
        assert "gave up after 3 attempts" in str(error.value)
        assert error.value.status == 502
        verdicts = [
            entry.verdict for entry in await storage.audit.for_target(f"{PROJECT}#{issue.iid}")
        ]
        assert verdicts[-1] == "error:502"


async def test_branch_and_mr_are_find_or_create(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    gl = admin(sim)
    project = gl.projects.get(PROJECT)
    project.commits.create(
        {
            "branch": "main",
            "commit_message": "init",
            "actions": [{"action": "create", "file_path": "a.txt", "content": "a\n"}],
        }
    )
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        merges = gateway.merges
        sha = await merges.ensure_branch(PROJECT, "crewline/1-greeting", "main")
        assert await merges.ensure_branch(PROJECT, "crewline/1-greeting", "main") == sha
        mr = await merges.ensure_mr(
            PROJECT,
            source_branch="crewline/1-greeting",
            target_branch="main",
            title="Greeting",
            description="Closes #1",
        )
        assert mr.draft and mr.title == "Draft: Greeting"
        again = await merges.ensure_mr(
            PROJECT,
            source_branch="crewline/1-greeting",
            target_branch="main",
            title="Greeting",
            description="x",
        )
        assert again.iid == mr.iid
        assert len(project.mergerequests.list(get_all=True)) == 1


async def test_ensure_mr_adopts_an_mr_created_concurrently(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    project.commits.create(
        {
            "branch": "main",
            "commit_message": "init",
            "actions": [{"action": "create", "file_path": "a.txt", "content": "a\n"}],
        }
    )
    project.branches.create({"branch": "feature", "ref": "main"})
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        merges = gateway.merges
        real_find = merges.find_mr
        calls = 0

        async def find_late(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            # The first lookup runs before a second host creates the MR: it sees nothing.
            nonlocal calls
            calls += 1
            if calls == 1:
                project.mergerequests.create(
                    {"source_branch": "feature", "target_branch": "main", "title": "Other host"}
                )
                return None
            return await real_find(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(merges, "find_mr", find_late)
        mr = await merges.ensure_mr(
            PROJECT, source_branch="feature", target_branch="main", title="T", description=""
        )
        assert mr.title == "Other host"
        assert len(project.mergerequests.list(get_all=True)) == 1
