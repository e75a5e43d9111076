"""Git over smart HTTP with faults: a push performed whose answer is lost is recognised by
the remote branch's sha (not pushed again, not failed); a push or fetch refused before it
was performed is tried again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.core.app import RunningSim
from tests.support.faults import add_fault, lose_answer, rules
from tests.support.workspace import AUTHOR, PROJECT, workspace_setup

RECEIVE = r"/git-receive-pack$"


@pytest.mark.parametrize("lost", [{"status": 503}, {"status": 500}, {"drop": True}])
async def test_a_push_whose_answer_is_lost_does_not_fail_and_leaves_the_pushed_sha(
    sim: RunningSim, tmp_path: Path, lost: dict[str, Any]
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 7, "Lost push", "main", "r1")
        (wt.path / "a.txt").write_text("a\n")
        first = await ws.commit_all(wt, "a", *AUTHOR)
        rule = lose_answer(sim, "POST", RECEIVE, **lost)
        pushes = add_fault(sim, method="POST", path_regex=RECEIVE, latency_ms=1).json()
        assert await ws.push(wt, None) == first
        assert setup.branch_sha(wt.branch) == first
        counted = {r["id"]: r["hits"] for r in rules(sim)}
        assert counted[rule["id"]] == 1
        if not lost.get("drop"):  # (git's HTTP client itself resends on a dead connection)
            assert counted[pushes["id"]] == 1  # crewline did not push again
        # The lease of the next push is the sha that was pushed: the run carries on.
        (wt.path / "b.txt").write_text("b\n")
        second = await ws.commit_all(wt, "b", *AUTHOR)
        assert await ws.push(wt, first) == second
        assert setup.branch_sha(wt.branch) == second
        await ws.close(wt)


async def test_a_push_refused_before_it_was_performed_is_pushed_again(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        wt = await ws.open(PROJECT, setup.url, 8, "Refused push", "main", "r1")
        (wt.path / "a.txt").write_text("a\n")
        sha = await ws.commit_all(wt, "a", *AUTHOR)
        add_fault(sim, method="POST", path_regex=RECEIVE, status=502, count=1)
        assert await ws.push(wt, None) == sha
        assert setup.branch_sha(wt.branch) == sha
        await ws.close(wt)


async def test_a_fetch_that_fails_once_is_fetched_again(sim: RunningSim, tmp_path: Path) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        ws = setup.workspaces()
        add_fault(sim, method="POST", path_regex=r"/git-upload-pack$", status=503, count=1)
        wt = await ws.open(PROJECT, setup.url, 9, "Fetch", "main", "r1")
        assert wt.base_sha == setup.main_sha()
        await ws.close(wt)
