"""The merge gate against GitLab's refusals and a crash: a 403 for missing approvals (or a
5xx) leaves the gate open with GitLab's reason (the desk says so), a later approval killed
between its note and the merge is completed by the janitor, merged once, and a merge whose
answer was lost is finished as merged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forge.client import ForgeError
from roles.engine.janitor import sweep
from roles.gates.decide import GateNotDecided
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, note_bodies, state_of
from tests.support.review_merge import (
    greet_at_merge_ready,
    inject_fault,
    issue_mr,
)
from tests.test_review_qa_merge import decide

REFUSED = (
    "GitLab refused the merge (403: 403 Forbidden - Merge request requires 1 more approval(s))"
)


class Killed(BaseException):
    """The process dies here: nothing after this point of the step runs."""


def approvals(sim: RunningSim, iid: int) -> list[str]:
    return [body for body in note_bodies(sim, iid) if "key=decision:merge:" in body]


async def test_a_forbidden_merge_leaves_the_gate_open_and_a_later_approval_merges(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, _, issue):
        gate = desk.merges[-1]
        mr = issue_mr(demo_sim, issue.iid)
        mr.approvals.update(new_data={"approvals_required": 1})  # an approval rule in GitLab

        refused = await decide(runtime, issue.iid, gate.revision)
        assert (refused.applied, refused.pending) == (False, True)
        assert refused.message.startswith(f"{REFUSED}; the merge gate stays open")
        with pytest.raises(GateNotDecided, match="403 Forbidden"):
            await desk.console.request(gate)  # the console desk does not take it as decided
        assert await state_of(runtime, issue.iid) == "merge-ready"
        assert issue_mr(demo_sim, issue.iid).state == "opened"
        bodies = note_bodies(demo_sim, issue.iid)
        assert sum(REFUSED in body for body in bodies) == 1  # one note for the one fact
        assert approvals(demo_sim, issue.iid) == []  # no approval left to complete
        assert (await sweep(runtime.services)).decided == []
        assert await state_of(runtime, issue.iid) == "merge-ready"

        # A maintainer approves in GitLab; the next approval dies between its note and the merge.
        mr.approve(sha=gate.revision)

        async def dies(*args: Any, **kwargs: Any) -> Any:
            raise Killed

        assert runtime.services.merger is not None
        monkeypatch.setattr(runtime.services.merger, "merge", dies)
        with pytest.raises(Killed):
            await decide(runtime, issue.iid, gate.revision)
        monkeypatch.undo()
        assert await state_of(runtime, issue.iid) == "merge-ready"
        assert len(approvals(demo_sim, issue.iid)) == 1

        report = await sweep(runtime.services)
        assert report.decided == [f"{PROJECT}#{issue.iid}"]
        assert await state_of(runtime, issue.iid) == "done"

    assert issue_mr(demo_sim, issue.iid).state == "merged"
    [approval] = approvals(demo_sim, issue.iid)
    assert "approved by bob via a test" in approval


async def test_a_5xx_merge_stays_open_and_a_merge_whose_answer_was_lost_is_finished(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, _, issue):
        gate = desk.merges[-1]
        # GitLab fails every try of the merge (the client's retries included).
        inject_fault(
            demo_sim, method="PUT", path_regex=r"/merge_requests/\d+/merge$", status=502, count=4
        )
        failed = await decide(runtime, issue.iid, gate.revision)
        assert (failed.applied, failed.pending) == (False, True)
        assert failed.message.startswith("GitLab refused the merge (502: ")
        assert await state_of(runtime, issue.iid) == "merge-ready"
        assert issue_mr(demo_sim, issue.iid).state == "opened"
        assert approvals(demo_sim, issue.iid) == []

        # GitLab merges but its answer is lost: the gate notices the merge and finishes.
        assert runtime.services.merger is not None
        merge = runtime.services.merger.merge

        async def answer_lost(*args: Any, **kwargs: Any) -> Any:
            await merge(*args, **kwargs)
            raise ForgeError("mr.merge", "502 Bad Gateway", 502)

        monkeypatch.setattr(runtime.services.merger, "merge", answer_lost)
        merged = await decide(runtime, issue.iid, gate.revision)
        assert merged.applied and merged.message.endswith("approved by bob via a test. Merged.")
        assert await state_of(runtime, issue.iid) == "done"

    assert issue_mr(demo_sim, issue.iid).state == "merged"
    assert len(approvals(demo_sim, issue.iid)) == 1
