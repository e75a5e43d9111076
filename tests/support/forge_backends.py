"""The two backends of the GitLab contract suite (``tests/contract/test_*_contract.py``): the
in-memory fake (``tests/support/fake_tracker.py``) and the real ``forge.gateway.Gateway``
against the simulator over HTTP. Each gives the tracker crewline uses (as ``crewline-bot``)
and the few things a test does as someone else: a human's comment, a blocking link, a push,
an approval, and CI: a push whose pipeline runs scripted jobs (:class:`CiJob`), and letting
retried jobs run. The simulator's runner really runs them (a ``.gitlab-ci.yml`` committed
with the push, JUnit reports committed beside it); the fake is told their outcome.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gitlab

from forge.junit import parse_junit
from forge.ports import IssueTracker, Noteable
from sim.core.app import RunningSim
from sim.pipelines.junit import render_junit
from tests.support.fake_ci_state import file_diff
from tests.support.fake_state import FakeGitLab
from tests.support.fake_tracker import FakeTracker
from tests.support.forge import PROJECT, admin, gateway_for, make_project
from tests.support.sim_pipelines import wait_idle

OTHER = "maintainer"  # a human with a token in the simulator; no crewline user


@dataclass(frozen=True)
class CiJob:
    """A job of a scripted pipeline: what it prints, whether it passes, and the JUnit test
    cases it reports (``fake_ci_state.case``), if any."""

    name: str
    prints: str = ""
    passes: bool = True
    cases: tuple[dict[str, Any], ...] | None = None

    def junit(self) -> bytes:
        return render_junit(self.name, list(self.cases or ()))


class World(Protocol):
    """What a test does outside crewline's own calls."""

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int: ...

    def block(self, iid: int, blocker: int) -> None: ...

    def push(self, branch: str) -> str: ...

    def approve(self, username: str, mr_iid: int) -> None: ...

    def pipeline(self, branch: str, jobs: Sequence[CiJob]) -> str:
        """Push a commit to ``branch`` whose pipeline runs ``jobs`` (one stage) to the end:
        the commit's sha."""
        ...

    def settle(self) -> None:
        """Let CI run every job waiting to run (a retried job) to its end."""
        ...

    def merged_results(self, branch: str, mr_iid: int, jobs: Sequence[CiJob]) -> str:
        """With merged-results pipelines on, push a commit to ``branch`` (the source of MR
        ``mr_iid``): its pipeline runs ``jobs`` on a merge commit of the head and the
        target, as the MR's. The commit's sha."""
        ...

    def unrunnable(self, branch: str) -> str:
        """Push a commit whose CI configuration names a stage that does not exist
        (``nowhere``): GitLab fails its pipeline before any job. The commit's sha."""
        ...


@dataclass
class Backend:
    name: str
    tracker: IssueTracker
    world: World


class FakeWorld:
    def __init__(self, tracker: FakeTracker) -> None:
        self.tracker = tracker
        self.scripts: dict[tuple[int, str], CiJob] = {}  # (pipeline, job name) -> its script
        self.pushes = 0

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int:
        return self.tracker.note_by(username, PROJECT, iid, body, on=on)

    def block(self, iid: int, blocker: int) -> None:
        self.tracker.state.link_blocked(PROJECT, iid, blocker)

    def push(self, branch: str) -> str:
        """A new commit adding ``change-<n>.txt`` (as the simulator's push does): MRs open
        from ``branch`` get that file in their scripted diff (a push made before the MR
        opened, or a pipeline's commit, is in no fake diff: compare diffs only after)."""
        self.pushes += 1
        path = f"change-{self.pushes}.txt"
        for (project, iid), mr in self.tracker.state.mrs.items():
            if mr["source_branch"] == branch and mr["state"] == "opened":
                diff = file_diff(path, "@@ -0,0 +1 @@\n+x\n", new_file=True)
                self.tracker.state.diffs.setdefault((project, iid), []).append(diff)
        return self.tracker.merges.push(PROJECT, branch)

    def approve(self, username: str, mr_iid: int) -> None:
        self.tracker.merges.approve(PROJECT, mr_iid, username)

    def pipeline(self, branch: str, jobs: Sequence[CiJob]) -> str:
        head = self.push(branch)
        ci = self.tracker.state.ci
        self.run(ci.add_pipeline(PROJECT, head, ref=branch), jobs)
        return head

    def run(self, pipeline: int, jobs: Sequence[CiJob]) -> None:
        for job in jobs:
            self.tracker.state.ci.add_job(pipeline, job.name)
            self.scripts[(pipeline, job.name)] = job
        self.settle()

    def merged_results(self, branch: str, mr_iid: int, jobs: Sequence[CiJob]) -> str:
        head = self.push(branch)
        ci, mr = self.tracker.state.ci, self.tracker.state.mr(PROJECT, mr_iid)
        target = self.tracker.state.branches[(PROJECT, mr["target_branch"])]
        pipeline = ci.add_pipeline(
            PROJECT, ci.merge_commit(target, head), ref=f"refs/merge-requests/{mr_iid}/merge",
            source="merge_request_event", mr_iid=mr_iid, source_sha=head,
        )  # fmt: skip
        self.run(pipeline, jobs)
        return head

    def unrunnable(self, branch: str) -> str:
        head = self.push(branch)
        error = "test job: chosen stage nowhere does not exist"  # what GitLab would say
        self.tracker.state.ci.add_pipeline(
            PROJECT, head, ref=branch, status="failed", yaml_errors=error
        )
        return head

    def settle(self) -> None:
        ci = self.tracker.state.ci
        for job in [job for job in ci.jobs.values() if job.status == "pending"]:
            script = self.scripts[(job.pipeline_id, job.name)]
            ci.finish(job.id, "success" if script.passes else "failed", f"{script.prints}\n")
            if script.cases is not None:  # what GitLab reads back from the uploaded report
                ci.set_report(job.id, parse_junit(script.junit()))


class SimWorld:
    def __init__(self, sim: RunningSim) -> None:
        self.sim = sim
        self.project = admin(sim).projects.get(PROJECT)
        self.pushes = 0
        self.written: dict[str, set[str]] = {}  # branch -> the paths its commits created

    def new_file(self) -> str:
        """A path no earlier push created: each push is one new commit."""
        self.pushes += 1
        return f"change-{self.pushes}.txt"

    def note_by(self, username: str, iid: int, body: str, *, on: Noteable = "issue") -> int:
        project = self.maintainer(username).projects.get(PROJECT, lazy=True)
        noteable = (project.issues if on == "issue" else project.mergerequests).get(iid, lazy=True)
        return int(noteable.notes.create({"body": body}).id)

    def maintainer(self, username: str) -> gitlab.Gitlab:
        assert username == OTHER, "the simulator's other user with a token is the maintainer"
        return gitlab.Gitlab(self.sim.base_url, private_token=self.sim.config.maintainer_token)

    def approve(self, username: str, mr_iid: int) -> None:
        self.maintainer(username).projects.get(PROJECT, lazy=True).mergerequests.get(
            mr_iid, lazy=True
        ).approve()

    def block(self, iid: int, blocker: int) -> None:
        links = self.project.issues.get(iid, lazy=True).links
        links.create(
            {
                "target_project_id": PROJECT,
                "target_issue_iid": blocker,
                "link_type": "is_blocked_by",
            }
        )

    def push(self, branch: str) -> str:
        return self.commit(branch, {self.new_file(): "x\n"})

    def commit(self, branch: str, files: dict[str, str]) -> str:
        """One commit writing ``files`` (created, or updated where an earlier commit on
        ``branch`` created them: its branches start from main, which has none of these)."""
        known = self.written.setdefault(branch, set())
        actions = [
            {"action": "update" if path in known else "create", "file_path": path,
             "content": content}
            for path, content in files.items()
        ]  # fmt: skip
        known.update(files)
        commit = self.project.commits.create(
            {"branch": branch, "commit_message": "a change", "actions": actions}
        )
        return str(commit.id)

    def merged_results(self, branch: str, mr_iid: int, jobs: Sequence[CiJob]) -> str:
        self.project.merge_pipelines_enabled = True
        self.project.save()
        return self.pipeline(branch, jobs)

    def pipeline(self, branch: str, jobs: Sequence[CiJob]) -> str:
        """One commit with a ``.gitlab-ci.yml`` (JSON is YAML) of ``jobs``, each printing
        ``ci/<name>.txt`` and failing by its exit code, its JUnit file committed as
        ``ci/<name>.xml``; the runner runs them before this returns."""
        files: dict[str, str] = {}
        config: dict[str, Any] = {"stages": ["test"]}
        for job in jobs:
            files[f"ci/{job.name}.txt"] = f"{job.prints}\n"
            body: dict[str, Any] = {
                "stage": "test",
                "script": [f"cat ci/{job.name}.txt", "true" if job.passes else "exit 1"],
            }
            if job.cases is not None:
                files[f"ci/{job.name}.xml"] = job.junit().decode()
                body["artifacts"] = {"when": "always", "reports": {"junit": f"ci/{job.name}.xml"}}
            config[job.name] = body
        files[".gitlab-ci.yml"] = json.dumps(config)
        head = self.commit(branch, files)
        self.settle()
        return head

    def settle(self) -> None:
        wait_idle(self.sim)

    def unrunnable(self, branch: str) -> str:
        broken = "test:\n  stage: nowhere\n  script: [echo never]\n"
        head = self.commit(branch, {".gitlab-ci.yml": broken})
        self.settle()
        return head


def fake_backend(*, premium: bool = True) -> Backend:
    """The fake; ``premium=False``: GitLab Free, where scoped labels are not exclusive."""
    state = FakeGitLab(premium=premium)
    state.add_project(PROJECT)
    tracker = FakeTracker(state)
    return Backend("fake", tracker, FakeWorld(tracker))


@asynccontextmanager
async def sim_backend(sim: RunningSim, db_path: Path) -> AsyncIterator[Backend]:
    """The real gateway over the simulator, in a project like the fake's: crewline-bot a
    Developer, maintainer a Maintainer, one commit on main."""
    make_project(sim)
    admin(sim).projects.get(PROJECT).commits.create(
        {
            "branch": "main",
            "commit_message": "init",
            "actions": [{"action": "create", "file_path": "a.txt", "content": "a\n"}],
        }
    )
    async with gateway_for(sim, db_path) as (gateway, _):
        yield Backend("sim", gateway, SimWorld(sim))
