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
    assert [goals[n]["state"] for n in (1, 2, 3)] == ["review-ready", "review-ready", "dev-ready"]
    assert [goals[n]["validations"] for n in (1, 2, 3)] == [1, 2, 0]
    assert goals[1]["states"] == [
        "pm-ready",
        "pm-running",
        "plan-review",
        "dev-ready",
        "dev-running",
        "review-ready",
    ]
    mrs = {goals[n]["merge_request"] for n in (1, 2)}
    assert len(mrs) == 2 and all(re.search(r"/demo/app/-/merge_requests/\d+$", mr) for mr in mrs)
    assert goals[3]["merge_request"] is None
    assert goals[3]["waiting"] == "waiting for #1 to be done"
    assert list(work.iterdir()) == []  # everything lived in a temporary directory
