"""Helpers for the simulator's pipeline tests: the demo's JUnit script and small test suites
to commit, a flaky script driven by a counter file outside the checkout, waiting for the
runner through ``/_sim/idle``, and reading pipelines and jobs back through python-gitlab."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from gitlab.v4.objects import Project, ProjectPipeline

from sim.core.app import RunningSim
from sim.core.seed import demo_files
from tests.support.sim_mr import ROOT_TOKEN

JUNIT_SCRIPT = demo_files()["ci/junit.py"].decode()

# A unittest suite with one test of each outcome: 4 tests, 1 failed, 1 error, 1 skipped.
MIXED_SUITE = """import unittest


class Mixed(unittest.TestCase):
    def test_passes(self):
        self.assertEqual(2, 1 + 1)

    def test_fails(self):
        self.assertEqual("expected", "actual", "greeting mismatch")

    def test_errors(self):
        raise RuntimeError("database unreachable")

    @unittest.skip("not on this platform")
    def test_skipped(self):
        pass
"""

PASSING_SUITE = """import unittest


class Passing(unittest.TestCase):
    def test_one(self):
        self.assertTrue(True)

    def test_two(self):
        self.assertIn("a", "abc")
"""

# Fails the first time it runs, passes afterwards: the count lives in the file named by
# its argument, outside any checkout, so it survives from one job run to the next.
FLAKY_SCRIPT = """import pathlib
import sys

counter = pathlib.Path(sys.argv[1])
runs = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(runs))
print(f"flaky run {runs}")
sys.exit(1 if runs == 1 else 0)
"""


def unittest_files(suite: str) -> dict[str, str]:
    """The demo's JUnit runner plus ``suite`` as ``tests/test_suite.py``."""
    return {
        "ci/junit.py": JUNIT_SCRIPT,
        "tests/__init__.py": "",
        "tests/test_suite.py": suite,
    }


def flaky_files(counter: Path, *, then: str = "echo deployed") -> dict[str, str]:
    """A two-stage pipeline whose ``flaky`` test job fails once, then ``deploy`` runs."""
    ci = f"""stages: [test, deploy]
variables:
  COUNTER: "{counter}"
flaky:
  stage: test
  script:
    - python3 ci/flaky.py "$COUNTER"
deploy:
  stage: deploy
  script:
    - {then}
"""
    return {".gitlab-ci.yml": ci, "ci/flaky.py": FLAKY_SCRIPT}


def wait_idle(sim: RunningSim, seconds: float = 60) -> None:
    """Block until the simulator has no pipeline being created and no job queued or running."""
    response = requests.get(
        f"{sim.base_url}/api/v4/_sim/idle",
        params={"timeout": int(seconds)},
        headers={"PRIVATE-TOKEN": ROOT_TOKEN},
        timeout=seconds + 10,
    )
    response.raise_for_status()
    assert response.json() == {"idle": True}, "the runner did not settle in time"


def only_pipeline(project: Project, sha: str) -> ProjectPipeline:
    """The one pipeline of ``sha``, fetched in full."""
    found = project.pipelines.list(sha=sha, get_all=True)
    assert len(found) == 1, [(p.id, p.ref, p.status) for p in found]
    return project.pipelines.get(found[0].id)


def jobs_by_name(pipeline: ProjectPipeline, include_retried: bool = False) -> dict[str, Any]:
    """Job name -> job (the newest of that name when retried jobs are included)."""
    jobs = pipeline.jobs.list(get_all=True, include_retried=include_retried)
    return {job.name: job for job in sorted(jobs, key=lambda job: job.id)}


def poll(check: Callable[[], Any], seconds: float = 30, what: str = "condition") -> Any:
    """The first truthy result of ``check``, retried every 50 ms for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
