"""Set-up for QA tests that start at qa-ready: an issue whose merge request a "developer"
(the test, as the maintainer) has already pushed and opened, with the handoff marker QA
finds it by, so only the QA role runs (no PM, developer or review agent)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.app import Runtime
from forge.sink import seal
from roles.mr_link import mr_marker
from sim.core.app import RunningSim
from tests.support.engine import PROJECT
from tests.support.review_merge import as_maintainer, commit

PASSING_TEST = """import unittest


class ExtraTest(unittest.TestCase):
    def test_passes(self) -> None:
        self.assertEqual(2, 1 + 1)
"""

FAILING_TEST = """import unittest


class ExtraTest(unittest.TestCase):
    def test_adds(self) -> None:
        self.assertEqual(3, 1 + 1, "round {round}: the sum is wrong")
"""


@dataclass(frozen=True)
class QaWork:
    iid: int
    mr_iid: int
    branch: str


async def open_work(runtime: Runtime, sim: RunningSim, name: str, files: dict[str, str]) -> QaWork:
    """An issue with an open (non-draft) MR from ``crewline/<iid>-<name>`` carrying
    ``files``, and the developer's handoff note; not yet at any workflow state."""
    gateway = runtime.services.gateway
    issue = await gateway.create_issue(PROJECT, f"QA: {name}", "Work already pushed.")
    branch = f"crewline/{issue.iid}-{name}"
    project = as_maintainer(sim)
    project.branches.create({"branch": branch, "ref": "main"})
    commit(sim, branch, f"{name}: the work", files)
    mr = project.mergerequests.create(
        {
            "source_branch": branch,
            "target_branch": "main",
            "title": f"QA: {name}",
            "description": f"Closes #{issue.iid}",
        }
    )
    await gateway.post_note(
        PROJECT, issue.iid, f"Handoff: !{mr.iid} is ready.\n\n{seal(mr_marker(mr.iid, branch))}"
    )
    return QaWork(issue.iid, int(mr.iid), branch)


async def to_qa(runtime: Runtime, work: QaWork) -> None:
    """Hand the work to QA (what the review role does when it is done)."""
    await runtime.services.gateway.transition(PROJECT, work.iid, "qa-ready")
