"""Set-up for the flaky-test doctor's tests: a suite on the demo project whose outcomes a
counter file outside the checkout scripts run by run, pipelines run again on one commit,
and a crewline host or two against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from bot.app import Runtime
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, root, runtime_for
from tests.support.sim_pipelines import wait_idle

# ``test_scripted`` shuffles without a seed (so the demo diagnostician names unseeded
# randomness) but fails on the runs FAIL_RUNS names (1-based, counted in $COUNTER), so a
# test can fail in one pipeline and pass in the next on the same commit. ``test_broken``
# always fails, ``test_steady`` always passes.
SCRIPTED_SUITE = """import os
import pathlib
import random
import unittest


class Scripted(unittest.TestCase):
    def test_scripted(self):
        order = [1, 2, 3]
        random.shuffle(order)  # what the demo diagnostician blames; the counter decides
        counter = pathlib.Path(os.environ["COUNTER"])
        run = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(run))
        failing = {int(n) for n in os.environ["FAIL_RUNS"].split(",") if n}
        self.assertNotIn(run, failing, f"run {run} at 0x7f3a9c: the shuffle came out wrong")

    def test_broken(self):
        self.assertEqual("expected", "actual", "a real bug")

    def test_steady(self):
        self.assertTrue(True)
"""

SCRIPTED = "tests.test_scripted.Scripted.test_scripted"
BROKEN = "tests.test_scripted.Scripted.test_broken"
STEADY = "tests.test_scripted.Scripted.test_steady"


def scripted_files(counter: Path, fail_runs: str) -> dict[str, str]:
    ci = f"""stages: [test]
variables:
  COUNTER: "{counter}"
  FAIL_RUNS: "{fail_runs}"
test:
  stage: test
  script:
    - python3 ci/junit.py --output report.xml
  artifacts:
    when: always
    paths: [report.xml]
    reports:
      junit: report.xml
"""
    return {".gitlab-ci.yml": ci, "tests/test_scripted.py": SCRIPTED_SUITE}


def push_scripted(sim: RunningSim, branch: str, counter: Path, fail_runs: str) -> str:
    """A branch from main with the scripted suite; its push pipeline runs once. The head."""
    project = root(sim).projects.get(PROJECT)
    files = scripted_files(counter, fail_runs)
    commit = project.commits.create(
        {
            "branch": branch,
            "start_branch": "main",
            "commit_message": "a scripted suite",
            "actions": [
                {"action": "update" if path == ".gitlab-ci.yml" else "create",
                 "file_path": path, "content": content}
                for path, content in files.items()
            ],
        }
    )  # fmt: skip
    wait_idle(sim)
    return str(commit.id)


def run_again(sim: RunningSim, branch: str) -> int:
    """One more pipeline on the branch's head (``POST /pipeline?ref=``), finished."""
    pipeline = root(sim).projects.get(PROJECT).pipelines.create({"ref": branch})
    wait_idle(sim)
    return int(pipeline.id)


def retry_test_job(sim: RunningSim, pipeline_id: int) -> None:
    project = root(sim).projects.get(PROJECT)
    job = next(j for j in project.pipelines.get(pipeline_id).jobs.list(get_all=True))
    project.jobs.get(job.id, lazy=True).retry()
    wait_idle(sim)


def flaky_issues(sim: RunningSim, state: str = "all") -> list[dict[str, object]]:
    project = root(sim).projects.get(PROJECT)
    issues = project.issues.list(labels="flaky-test", state=state, get_all=True)
    return [issue.attributes for issue in sorted(issues, key=lambda issue: issue.iid)]


@asynccontextmanager
async def hosts(sim: RunningSim, base: Path, count: int = 2) -> AsyncIterator[list[Runtime]]:
    """``count`` crewline hosts on one GitLab, each with its own SQLite file."""
    async with AsyncExitStack() as stack:
        runtimes = []
        for n in range(count):
            config = configure(sim, base / f"host-{n}", worker_id=f"host-{n}")
            runtime, _ = await stack.enter_async_context(runtime_for(sim, config))
            runtimes.append(runtime)
        yield runtimes


async def in_thread(fn: object, *args: object) -> object:
    return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]
