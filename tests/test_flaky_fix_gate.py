"""A flaky test's "fix" that retries or skips the test is refused by the developer role
before the merge request goes to review; a fix of the cause goes on to review as usual.
Real PM and developer runs: the demo agent writes the files the goal names."""

from __future__ import annotations

from pathlib import Path

from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    configure,
    file_block,
    goal_text,
    note_bodies,
    reach,
    root,
    runtime_for,
)

SKIPPED = """import random
import unittest


class Shuffle(unittest.TestCase):
    @unittest.skip("flaky, see the issue")
    def test_first_is_small(self):
        items = [1, 2, 3]
        random.shuffle(items)
        self.assertEqual(items[0], 1)
"""

SEEDED = """import random
import unittest


class Shuffle(unittest.TestCase):
    def test_first_is_small(self):
        items = [1, 2, 3]
        random.Random(4).shuffle(items)
        self.assertEqual(sorted(items), [1, 2, 3])
"""

RETRIED_CI = """stages:
  - test

test:
  stage: test
  retry: 2
  script:
    - python3 ci/junit.py --output report.xml
"""


async def test_a_skip_or_a_retry_fix_is_refused_before_review_and_a_real_fix_passes(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        gateway, wf = runtime.services.gateway, runtime.services.workflow
        labels = [wf.state(wf.entry).label, "flaky-test"]
        skip = await gateway.create_issue(
            PROJECT,
            "Fix flaky test test_first_is_small",
            goal_text(
                "Make the shuffle test deterministic.", file_block("tests/test_shuffle.py", SKIPPED)
            ),
            labels,
        )
        retry = await gateway.create_issue(
            PROJECT,
            "Fix flaky test suite",
            goal_text("Make CI green.", file_block(".gitlab-ci.yml", RETRIED_CI)),
            labels,
        )
        real = await gateway.create_issue(
            PROJECT,
            "Fix flaky test test_first_is_small properly",
            goal_text("Seed the shuffle.", file_block("tests/test_shuffle.py", SEEDED)),
            labels,
        )
        await reach(
            runtime,
            {skip.iid: "blocked", retry.iid: "blocked", real.iid: "review-ready"},
            limit=120,
        )
    for iid, why in ((skip.iid, "skips the test"), (retry.iid, "retries the test")):
        refusal = [b for b in note_bodies(demo_sim, iid) if "treating the symptom" in b]
        assert refusal and why in refusal[-1], note_bodies(demo_sim, iid)[-3:]
    opened = root(demo_sim).projects.get(PROJECT).mergerequests.list(get_all=True)
    assert [mr.description.splitlines()[0] for mr in opened] == [f"Closes #{real.iid}"]
