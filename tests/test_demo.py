"""`crewline demo` as a newcomer runs it: a real process, offline, no configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def test_demo_reaches_every_expected_state_and_prints_json(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
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
    lifecycle = ["pm-ready", "pm-running", "plan-review", "dev-ready", "dev-running"]
    lifecycle += ["review-ready", "review-running", "qa-ready", "qa-running", "merge-ready"]
    assert goals[1]["states"] == [*lifecycle, "done"]
    # The fourth goal's first pipeline failed in CI and QA sent it back to the developer once.
    assert goals[4]["states"][:10] == [*lifecycle[:9], "dev-ready"]
    assert goals[4]["pipelines"][0].endswith("failed")
    assert goals[4]["pipelines"][-1].endswith("success")
    mrs = {goals[n]["merge_request"] for n in (1, 2, 3, 4)}
    assert len(mrs) == 4 and all(re.search(r"/demo/app/-/merge_requests/\d+$", mr) for mr in mrs)
    assert list(work.iterdir()) == []  # everything lived in a temporary directory
