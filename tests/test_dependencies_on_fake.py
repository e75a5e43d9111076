"""The developer role's scheduling gates (``roles/dependencies.py``) on the in-memory GitLab
fake: which dependencies an issue has (its description, its "is blocked by" links, its plan),
when it waits, when it is blocked, when overlapping work holds it back, and that a waiting
issue's dependencies are read again only once it changed. The engine end-to-end runs of
``tests/test_engine_e2e.py`` keep the same behaviour on the simulator; a failure here points
at the role's logic."""

from __future__ import annotations

from pathlib import Path

from forge.types import Issue
from roles.context import Services
from roles.dependencies import dependency_admission, overlap_admission
from roles.engine.loop import Verdict
from roles.pm.plan import Plan
from tests.support.fake_services import fake_services
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT


async def goal(tracker: FakeTracker, title: str, description: str = "", state: str = "") -> Issue:
    labels = [f"workflow::{state}"] if state else []
    return await tracker.create_issue(PROJECT, title, description, labels)


async def admitted(services: Services, iid: int) -> tuple[Verdict, str]:
    issue = await services.gateway.get_issue(PROJECT, iid)
    admission = await dependency_admission(services, issue)
    return admission.verdict, admission.reason


async def planned(tracker: FakeTracker, iid: int, owned: list[str], after: list[int]) -> None:
    """The PM's plan note of issue ``iid`` (as the PM role posts it: a keyed note)."""
    plan = Plan(
        summary="Do it.", steps=["do it"], acceptance=["true"], owned_paths=owned,
        depends_on=after,
    )  # fmt: skip
    await tracker.upsert_note(PROJECT, iid, f"pm-{iid}:plan", plan.to_markdown())


def link_reads(tracker: FakeTracker, iid: int) -> int:
    """How often issue ``iid``'s links were read (the audit counts every read)."""
    return sum(
        (what, target) == ("gitlab.issue.links", f"{PROJECT}#{iid}")
        for _, what, target, _ in tracker.audit.reads
    )


async def test_a_goal_waits_for_what_its_description_names_until_it_is_done(
    tmp_path: Path,
) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        first = await goal(tracker, "First", state="dev-ready")
        waiting = await goal(tracker, "Waits", f"Depends on #{first.iid}", "dev-ready")
        assert await admitted(services, waiting.iid) == (
            Verdict.WAIT, f"waiting for #{first.iid} to be done",
        )  # fmt: skip
        await tracker.transition(PROJECT, first.iid, "done")
        assert (await admitted(services, waiting.iid))[0] is Verdict.GO
        free = await goal(tracker, "Free", "Nothing to wait for.", "dev-ready")
        assert await admitted(services, free.iid) == (Verdict.GO, "")


async def test_a_closed_dependency_counts_as_done_and_a_missing_one_blocks(
    tmp_path: Path,
) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        first = await goal(tracker, "First", state="dev-ready")
        waiting = await goal(tracker, "Waits", f"Depends on #{first.iid}")
        await tracker.update_issue(PROJECT, first.iid, state_event="close")
        assert (await admitted(services, waiting.iid))[0] is Verdict.GO
        orphan = await goal(tracker, "Orphan", "Depends on #404")
        assert await admitted(services, orphan.iid) == (
            Verdict.BLOCK, f"#{orphan.iid} depends on #404, which does not exist",
        )  # fmt: skip


async def test_a_cycle_blocks_naming_it_and_a_chain_waits_for_each_link(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        a = await goal(tracker, "Cycle A", "Depends on #2")
        b = await goal(tracker, "Cycle B", f"Depends on #{a.iid}")
        assert b.iid == 2
        assert await admitted(services, a.iid) == (
            Verdict.BLOCK, f"dependency cycle: #{a.iid} -> #{b.iid} -> #{a.iid}",
        )  # fmt: skip
        base = await goal(tracker, "Base", state="dev-ready")
        middle = await goal(tracker, "Middle", f"Depends on #{base.iid}", "dev-ready")
        top = await goal(tracker, "Top", f"Depends on #{middle.iid}", "dev-ready")
        assert await admitted(services, top.iid) == (
            Verdict.WAIT, f"waiting for #{middle.iid}, #{base.iid} to be done",
        )  # fmt: skip


async def test_links_and_the_plan_are_dependencies_read_again_only_once_the_issue_changed(
    tmp_path: Path,
) -> None:
    """The fake-backed twin of the end-to-end test of the same name in test_engine_e2e.py:
    a waiting issue is checked on every pass, its links and plan read once per change."""
    async with fake_services(tmp_path) as (services, tracker):
        first = await goal(tracker, "First", state="dev-ready")
        waiting = await goal(tracker, "Waits", f"Depends on #{first.iid}", "dev-ready")
        assert (await admitted(services, waiting.iid))[0] is Verdict.WAIT
        reads = link_reads(tracker, waiting.iid)
        assert reads == 1
        assert (await admitted(services, waiting.iid))[0] is Verdict.WAIT
        assert link_reads(tracker, waiting.iid) == reads  # unchanged: nothing read again
        await tracker.update_issue(PROJECT, first.iid, state_event="close")
        assert (await admitted(services, waiting.iid))[0] is Verdict.GO  # read fresh
        blocker = await goal(tracker, "Blocker", state="dev-ready")
        tracker.state.link_blocked(PROJECT, waiting.iid, blocker.iid)
        assert await admitted(services, waiting.iid) == (
            Verdict.WAIT, f"waiting for #{blocker.iid} to be done",
        )  # fmt: skip
        assert link_reads(tracker, waiting.iid) == reads + 1  # it changed: read again, once
        later = await goal(tracker, "Later", state="dev-ready")
        await tracker.transition(PROJECT, blocker.iid, "done")
        await planned(tracker, waiting.iid, ["app/*.py"], after=[later.iid])
        assert await admitted(services, waiting.iid) == (
            Verdict.WAIT, f"waiting for #{later.iid} to be done",
        )  # fmt: skip


async def test_overlapping_owned_paths_hold_back_the_second_run(tmp_path: Path) -> None:
    async with fake_services(tmp_path) as (services, tracker):
        running = await goal(tracker, "Running", state="dev-running")
        await planned(tracker, running.iid, ["app/greet.py", "docs/*"], after=[])
        mine = await goal(tracker, "Mine", state="dev-ready")
        overlap = await overlap_admission(services, mine, ["app/*.py"])
        assert (overlap.verdict, overlap.reason) == (
            Verdict.WAIT, f"#{running.iid} is changing the same files (app/*.py)",
        )  # fmt: skip
        apart = await overlap_admission(services, mine, ["lib/*.py"])
        assert apart.verdict is Verdict.GO
        await tracker.transition(PROJECT, running.iid, "review-ready")  # it finished
        after = await overlap_admission(services, mine, ["app/*.py"])
        assert after.verdict is Verdict.GO
