"""One pass of the flaky-test doctor over a project: detect, reproduce what was detected,
diagnose what was reproduced, validate fixes waiting at the merge gate.

Run on ``schedule.flaky_cron``. The reproducer's work is claimed like any role's: the
issue moves ``flaky::detected`` to ``flaky::reproducing`` under a claim note and this host's
lease (forge/claims.py over the doctor's own workflow), so two hosts never re-run the same
test's job at once, and the claim is released when the issue has moved on. The diagnosis is
claimed the same way (``flaky::reproduced`` to ``flaky::diagnosing``). Every GitLab call
is audited by the gateway as usual.
"""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass, field

from forge.claims import Claims
from forge.gateway import Gateway, StaleState
from roles.context import Services
from roles.flaky.detector import Detector
from roles.flaky.diagnose_step import diagnose
from roles.flaky.filing import Rerun, rerun_of, stage_of
from roles.flaky.proof import Proofs, RunOnce
from roles.flaky.runs import JobRunner, Run
from roles.flaky.validate_step import head_rerun, validate_fix
from roles.settings import FlakyDoctorSettings
from storage import Lease
from workflow import Workflow, flaky_workflow

log = logging.getLogger(__name__)


@dataclass
class DoctorPass:
    filed: list[str] = field(default_factory=list)
    reproduced: list[str] = field(default_factory=list)
    not_reproduced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # claimed elsewhere, or nothing to re-run
    diagnosed: dict[str, str] = field(default_factory=dict)  # issue ref -> the state it went to
    validated: dict[str, bool] = field(default_factory=dict)  # issue ref -> N/N green


def flaky_gateway(gateway: Gateway, flaky: Workflow) -> Gateway:
    """The same gateway (calls, audit, trust) moving issues through the doctor's workflow."""
    view = copy.copy(gateway)
    view.workflow = flaky
    return view


class Doctor:
    def __init__(
        self, services: Services, settings: FlakyDoctorSettings, runner: JobRunner | None = None
    ) -> None:
        self.services = services
        self.settings = settings
        self.flaky = flaky_workflow()
        self.gateway = gateway = flaky_gateway(services.gateway, self.flaky)
        self.claims = Claims[Lease](
            gateway,
            services.storage.leases,
            worker=services.worker,
            ttl_seconds=services.claims.ttl,
        )
        self.detector = Detector(services, settings)
        self.proofs = Proofs(gateway, self.flaky)
        self.runner = runner or JobRunner(
            services.gateway.ci, services.gateway.merges, junit_path=settings.junit_path
        )

    async def run_pass(self, project: str) -> DoctorPass:
        done = DoctorPass()
        if not self.settings.enabled:
            return done
        done.filed = (await self.detector.scan_project(project)).filed
        waiting = await self.services.gateway.list_issues(
            project, labels=[self.settings.label, self.flaky.state("detected").label]
        )
        ones = await self._the_ones(project) if waiting else set()
        for issue in waiting:
            rerun = rerun_of(issue)
            if rerun is None or issue.iid not in ones:
                # Excused by QA only (no job of ours to re-run), or a duplicate another host
                # filed at the same moment and is about to close.
                done.skipped.append(issue.ref)
                continue
            claim = await self.claims.claim(issue, "reproduce", uuid.uuid4().hex[:12])
            if claim is None:
                done.skipped.append(issue.ref)
                continue
            try:
                verdict = await self.proofs.reproduce(
                    issue, self._runs_of(project, rerun), self.settings.reproduce_runs
                )
            finally:
                await self.claims.release(claim)
            (done.reproduced if verdict.rate.failures else done.not_reproduced).append(issue.ref)
        await self._diagnose_all(project, done)
        await self._validate_all(project, done)
        return done

    async def _validate_all(self, project: str, done: DoctorPass) -> None:
        gate = self.services.workflow.gate_state("merge").label
        at_gate = await self.services.gateway.list_issues(
            project, labels=[self.settings.label, gate]
        )
        # At fix-ready too: a host that died between that move and its claim left it there.
        for issue in at_gate:
            stage = stage_of(self.flaky, issue)
            if stage not in ("fixing", "fix-ready"):
                continue
            rerun = rerun_of(issue)
            head = None if rerun is None else await head_rerun(self.services, issue, rerun)
            if head is None:
                done.skipped.append(issue.ref)
                continue
            try:
                fresh = await self.gateway.transition(
                    project, issue.iid, "fix-ready", expect={stage}
                )
            except StaleState:
                done.skipped.append(issue.ref)  # another host got there first
                continue
            claim = await self.claims.claim(fresh, "validate", uuid.uuid4().hex[:12])
            if claim is None:
                done.skipped.append(issue.ref)
                continue
            try:
                accepted = await validate_fix(
                    self.services,
                    self.proofs,
                    fresh,
                    self._runs_of(project, head),
                    floor=self.settings.validate_floor,
                    ceiling=self.settings.validate_ceiling,
                )
            finally:
                await self.claims.release(claim)
            done.validated[issue.ref] = accepted

    async def _diagnose_all(self, project: str, done: DoctorPass) -> None:
        if self.settings.diagnose_agent_role not in self.services.agents:
            return  # no agent to ask: reproduced issues wait for a human or a later pass
        waiting = await self.services.gateway.list_issues(
            project, labels=[self.settings.label, self.flaky.state("reproduced").label]
        )
        for issue in waiting:
            rerun = rerun_of(issue)
            claim = (
                None
                if rerun is None
                else await self.claims.claim(issue, "diagnose", uuid.uuid4().hex[:12])
            )
            if rerun is None or claim is None:
                done.skipped.append(issue.ref)
                continue
            try:
                done.diagnosed[issue.ref] = await diagnose(
                    self.services, self.flaky, issue, rerun, self.settings.diagnose_agent_role
                )
            finally:
                await self.claims.release(claim)

    async def _the_ones(self, project: str) -> set[int]:
        """The iid of each test's one issue: the lowest open iid with its key."""
        by_key = await self.detector.filer.issues_by_key(project, state="opened")
        return {min(issue.iid for issue in issues) for issues in by_key.values()}

    def _runs_of(self, project: str, rerun: Rerun) -> RunOnce:
        async def once() -> Run:
            return await self.runner.run_once(project, rerun.pipeline, rerun.job, rerun.test)

        return once
