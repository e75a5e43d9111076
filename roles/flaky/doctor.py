"""One pass of the flaky-test doctor over a project: detect, then reproduce what was detected.

Run on ``schedule.flaky_cron``. The reproducer's work is claimed like any role's: the
issue moves ``flaky::detected`` to ``flaky::reproducing`` under a claim note and this host's
lease (forge/claims.py over the doctor's own workflow), so two hosts never re-run the same
test's job at once, and the claim is released when the issue has moved on. Every GitLab call
is audited by the gateway as usual.
"""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass, field

from forge.claims import Claims
from forge.gateway import Gateway
from roles.context import Services
from roles.flaky.detector import Detector
from roles.flaky.filing import Rerun, rerun_of
from roles.flaky.proof import Proofs, RunOnce
from roles.flaky.runs import JobRunner, Run
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
        gateway = flaky_gateway(services.gateway, self.flaky)
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
        for issue in waiting:
            rerun = rerun_of(issue)
            if rerun is None:
                done.skipped.append(issue.ref)  # excused by QA only: no job of ours to re-run
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
        return done

    def _runs_of(self, project: str, rerun: Rerun) -> RunOnce:
        async def once() -> Run:
            return await self.runner.run_once(project, rerun.pipeline, rerun.job, rerun.test)

        return once
