"""The chaos harness (bench/chaos.py) in the slow suite: several hosts, random SIGKILLs, hosts
dying right after a gate's decision note, API faults and lost write responses; then every goal
must be done with no duplicate, no double pickup, nothing lost and every audit chain intact.

Reproduce with the seed it prints: ``CREWLINE_TEST_SEED=<seed> pytest -m slow
tests/test_chaos.py -s``, or at full size with ``python bench/chaos.py --seed <seed>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from chaos import ChaosPlan, report, run_chaos


@pytest.mark.slow
@pytest.mark.timeout(1500)
async def test_hosts_killed_at_random_under_faults_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("CREWLINE_TEST_SEED", "11"))
    plan = ChaosPlan(
        workers=3, goals=4, kills=40, fault_rate=0.2, lost_rate=0.03, gate_kill_rate=0.3,
        seed=seed, limit=900,
    )  # fmt: skip
    result = await run_chaos(plan, tmp_path, say=False)
    story = report(result)
    print(story)
    assert result.kills >= 20, f"too few kills to mean anything\n{story}"
    assert result.findings.ok, story
    assert result.findings.done == plan.goals, story
