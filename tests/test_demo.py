"""`crewline demo` as a newcomer runs it: a real process, offline, no configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


# Five goals, the fifth's 15 + N CI runs one after another: minutes on a loaded machine.
@pytest.mark.timeout(1200)
def test_demo_reaches_every_expected_state_and_prints_json(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=1100,  # the demo's own limit (900 s) first; a loaded machine is slow
        cwd=work,  # no crewline.toml here: the demo needs none
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    goals = {goal["iid"]: goal for goal in summary["goals"]}
    assert [goals[n]["state"] for n in (1, 2, 3, 4)] == ["done"] * 4
    assert [goals[n]["validations"] for n in (1, 2, 3, 4)] == [1, 2, 1, 1]
    assert [goals[n]["dev_attempts"] for n in (1, 2, 3, 4)] == [1, 1, 1, 2]
    # A stage's ready state is skipped when the host carries the issue straight on to the
    # next role (decision 0037); the demo's one host does so whenever it has a free slot.
    carried = {"review-ready", "qa-ready"}
    lifecycle = ["pm-ready", "pm-running", "plan-review", "dev-ready", "dev-running"]
    lifecycle += ["review-ready", "review-running", "qa-ready", "qa-running", "merge-ready"]
    walked = [s for s in lifecycle if s not in carried]

    def uncarried(states: list[str]) -> list[str]:
        return [s for s in states if s not in carried]

    assert uncarried(goals[1]["states"]) == [*walked, "done"]
    # The fourth goal's first pipeline failed in CI and QA sent it back to the developer
    # once (carried straight to dev-running, or queued at dev-ready when no slot was free).
    assert uncarried(goals[4]["states"])[:7] == walked[:7]
    assert uncarried(goals[4]["states"])[7] in ("dev-ready", "dev-running")
    assert goals[4]["pipelines"][0].endswith("failed")
    assert goals[4]["pipelines"][-1].endswith("success")
    mrs = {goals[n]["merge_request"] for n in (1, 2, 3, 4)}
    assert len(mrs) == 4 and all(re.search(r"/demo/app/-/merge_requests/\d+$", mr) for mr in mrs)
    assert list(work.iterdir()) == []  # everything lived in a temporary directory

    # The fifth goal: a flaky test on main, detected from main's real pipelines (red and
    # green on one commit), reproduced, diagnosed, fixed through the ordinary roles and
    # proven N/N, left at the merge gate for a human.
    flaky = summary["flaky"]
    assert flaky["ok"] is True and flaky["iid"] == 5
    assert (flaky["state"], flaky["flaky_state"]) == ("merge-ready", "validated")
    assert flaky["test"] == "tests.test_sampling.SlugSampleTest.test_slug_of_a_sample_title"
    history = flaky["history_pipelines"]
    assert any(p.endswith("success") for p in history)
    assert any(p.endswith("failed") for p in history)
    doctor = ["flaky::detected", "flaky::reproducing", "flaky::reproduced"]
    doctor += ["flaky::diagnosing", "flaky::fixing"]
    assert flaky["states"][:5] == doctor
    fixed = [s.removeprefix("workflow::") for s in flaky["states"] if s.startswith("workflow::")]
    assert uncarried(fixed) == walked
    ends = ["flaky::fix-ready", "flaky::validating", "flaky::validated"]
    assert flaky["states"][5 + len(fixed) :] == ends
    assert flaky["cause"] == "unseeded-randomness"
    assert len(flaky["reproduce_runs"]) == 15  # k, the demo's roles.flaky.reproduce_runs
    failed = sum(run.endswith("FAILED") for run in flaky["reproduce_runs"])
    assert failed == flaky["failures"] > 0 and flaky["p"] == round(failed / 15, 3)
    # N from the lower end of p's interval: at least the floor (4), at most the ceiling (20).
    assert 4 <= flaky["validate_n"] <= 20
    assert flaky["validation_runs"] == [r for r in flaky["validation_runs"] if r.endswith("passed")]
    assert len(flaky["validation_runs"]) == flaky["validate_n"]
    assert flaky["ci_runs"] == 15 + flaky["validate_n"] and flaky["ci_minutes"] > 0
