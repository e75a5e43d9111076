"""Fewer GitLab calls and fewer trips per call (docs/decisions/0048): a run starts from its
claim's answer, QA's first look at the pipeline from the MR it just read, a merge decision
closes and moves the issue in one update, and writes sent raw keep GitLab's errors typed.
Real simulator, real SQLite."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from forge.claims import Claims
from forge.client import ForgeNotFound
from forge.types import MergeRequest, Pipeline
from roles.context import RunContext
from roles.qa.pipeline import HeadPipelines
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, state_of
from tests.support.forge import PROJECT as BARE_PROJECT
from tests.support.forge import gateway_for, make_project
from tests.support.review_merge import (
    decide,
    greet_at_merge_ready,
    issue_mr,
)


async def test_a_fresh_run_starts_from_its_claims_answer_and_an_adopted_one_reads(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        filed = await gateway.create_issue(
            BARE_PROJECT, "Plan me", "the goal", ["workflow::pm-ready"]
        )
        claim = await Claims(gateway, storage.leases, worker="w", ttl_seconds=60).claim(
            filed, "pm", "r"
        )
        assert claim is not None and claim.moved is not None
        assert "workflow::pm-running" in claim.moved.labels  # GitLab's answer to the move
        reads: list[int] = []
        get_issue = gateway.get_issue

        async def counted(project: str, iid: int) -> Any:
            reads.append(iid)
            return await get_issue(project, iid)

        monkeypatch.setattr(gateway, "get_issue", counted)

        def run(fresh: bool) -> RunContext:
            return cast(
                RunContext, SimpleNamespace(fresh=fresh, claim=claim, gateway=gateway, issue=filed)
            )

        started = await RunContext.issue_at_start(run(fresh=True))
        assert started is claim.moved and reads == []
        # A resumed run (its claim adopted at a restart) reads the issue as it is now.
        resumed = await RunContext.issue_at_start(run(fresh=False))
        assert reads == [filed.iid] and resumed.description == "the goal"


class _Merges:
    """The MR reads HeadPipelines makes, counted."""

    def __init__(self, mr: MergeRequest) -> None:
        self.mr = mr
        self.reads = 0

    async def get_mr(self, project: str, iid: int) -> MergeRequest:
        self.reads += 1
        return self.mr

    async def mr_pipelines(self, project: str, iid: int) -> list[Pipeline]:
        return []


async def test_qa_looks_first_at_the_mr_it_just_read_and_reads_it_for_every_later_look() -> None:
    head = Pipeline(id=7, sha="a" * 40, ref="crewline/1-x", status="running", web_url="u")
    mr = MergeRequest(
        project=PROJECT, iid=1, id=11, title="x", description="", state="opened", draft=False,
        source_branch="crewline/1-x", target_branch="main", sha="a" * 40,
        detailed_merge_status="mergeable", web_url="u", head_pipeline=head,
    )  # fmt: skip
    merges = _Merges(mr)
    heads = HeadPipelines(cast(Any, merges), mr)
    assert await heads.newest() == head
    assert merges.reads == 0
    assert await heads.newest() == head  # a later look (after parking or a retry) reads
    assert merges.reads == 1


async def test_a_merge_decision_closes_the_issue_and_moves_it_to_done_in_one_update(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, _, issue):
        audit = runtime.storage.audit
        before = {e.id for e in await audit.for_target(f"{PROJECT}#{issue.iid}", 500)}
        decided = await decide(runtime, issue.iid, desk.merges[-1].revision)
        assert decided.applied, decided.message
        after = await audit.for_target(f"{PROJECT}#{issue.iid}", 500)
        updates = [e for e in after if e.id not in before and e.what == "gitlab.issue.update"]
        assert len(updates) == 1
        assert await state_of(runtime, issue.iid) == "done"
        fresh = await runtime.services.gateway.get_issue(PROJECT, issue.iid)
        assert fresh.state == "closed"
        assert [label for label in fresh.labels if label.startswith("workflow::")] == [
            "workflow::done"
        ]
    assert issue_mr(demo_sim, issue.iid).state == "merged"


async def test_raw_writes_keep_gitlabs_errors_typed(sim: RunningSim, tmp_path: Path) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        filed = await gateway.create_issue(BARE_PROJECT, "Here", "", ["workflow::pm-ready"])
        with pytest.raises(ForgeNotFound):
            await gateway.post_note(BARE_PROJECT, 999, "on no issue")
        with pytest.raises(ForgeNotFound):
            await gateway.update_issue(BARE_PROJECT, 999, add_labels=["workflow::done"])
        with pytest.raises(ForgeNotFound):
            await gateway.edit_note(BARE_PROJECT, filed.iid, 987654, "no such note")
        # And what they answer is GitLab's object, as a read gives it.
        posted = await gateway.post_note(BARE_PROJECT, filed.iid, "a note")
        edited = await gateway.edit_note(BARE_PROJECT, filed.iid, posted.id, "an edited note")
        moved = await gateway.update_issue(
            BARE_PROJECT,
            filed.iid,
            add_labels=["workflow::done"],
            remove_labels=["workflow::pm-ready"],
        )
        listed = await gateway.notes(BARE_PROJECT, filed.iid)
        assert [(n.id, n.body) for n in listed if n.id == posted.id] == [
            (edited.id, "an edited note")
        ]
        assert posted.author == edited.author and posted.author
        assert "workflow::done" in moved.labels and "workflow::pm-ready" not in moved.labels
