"""One pass of the flaky-test doctor over a project: detect, reproduce what was detected,
diagnose what was reproduced, validate fixes waiting at the merge gate, and bring this
week's flaky note on the control issue up to date (roles/flaky/weekly.py).

Run on ``schedule.flaky_cron``. The reproducer's work is claimed like any role's: the
issue moves ``flaky::detected`` to ``flaky::reproducing`` under a claim note and this host's
lease (forge/claims.py over the doctor's own workflow), so two hosts never re-run the same
test's job at once, and the claim is released when the issue has moved on. The diagnosis and
the validation are claimed the same way. Each step renews its claim while it works and
fences its writes by it; a step that raises is re-queued (attempt k of n) or failed, and a
host that dies mid-step is swept by the janitor (roles/flaky/janitor.py); a resumed step
counts the CI runs it had started (roles/flaky/resume.py). Every GitLab call is audited by
the gateway as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from forge.calls import fenced
from forge.claims import Claim, ClaimLost
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.types import Issue
from roles.context import Services
from roles.flaky.board import flaky_board
from roles.flaky.detector import Detector
from roles.flaky.diagnose_step import diagnose
from roles.flaky.filing import Rerun, rerun_of, stage_of
from roles.flaky.janitor import flaky_gateway, stopped
from roles.flaky.proof import REPRODUCE_KEY, VALIDATE_KEY, Proofs, RunOnce, Verdict
from roles.flaky.resume import resumable_runs
from roles.flaky.runs import JobRunner
from roles.flaky.validate_step import head_rerun, validate_fix
from roles.flaky.weekly import post_weekly
from roles.settings import FlakyDoctorSettings
from storage import Lease
from workflow import flaky_workflow

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class DoctorPass:
    filed: list[str] = field(default_factory=list)
    reproduced: list[str] = field(default_factory=list)
    not_reproduced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # claimed elsewhere, or nothing to re-run
    diagnosed: dict[str, str] = field(default_factory=dict)  # issue ref -> the state it went to
    validated: dict[str, bool] = field(default_factory=dict)  # issue ref -> N/N green
    weekly_note_on: int | None = None  # the control issue carrying this week's flaky note


class Doctor:
    def __init__(
        self, services: Services, settings: FlakyDoctorSettings, runner: JobRunner | None = None
    ) -> None:
        self.services = services
        self.settings = settings
        self.flaky = flaky_workflow()
        self.gateway = gateway = flaky_gateway(services.gateway, self.flaky)
        self.claims = services.claims.over(gateway)
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

            async def reproduce(issue: Issue = issue, rerun: Rerun = rerun) -> Verdict:
                runs, resume = await self._runs_of(issue, REPRODUCE_KEY, rerun)
                k = self.settings.reproduce_runs
                return await self.proofs.reproduce(issue, runs, k, resume=resume)

            verdict = await self._step(issue, "reproduce", reproduce)
            if verdict is None:
                done.skipped.append(issue.ref)
                continue
            (done.reproduced if verdict.rate.failures else done.not_reproduced).append(issue.ref)
        await self._diagnose_all(project, done)
        await self._validate_all(project, done)
        board = await flaky_board(self.services.gateway, [project], self.flaky, self.settings.label)
        done.weekly_note_on = await post_weekly(self.services.gateway, project, board)
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

            async def validate(fresh: Issue = fresh, head: Rerun = head) -> bool:
                runs, resume = await self._runs_of(fresh, VALIDATE_KEY, head)
                return await validate_fix(
                    self.services,
                    self.proofs,
                    fresh,
                    runs,
                    floor=self.settings.validate_floor,
                    ceiling=self.settings.validate_ceiling,
                    resume=resume,
                )

            accepted = await self._step(fresh, "validate", validate)
            if accepted is None:
                done.skipped.append(issue.ref)
                continue
            done.validated[issue.ref] = accepted

    async def _diagnose_all(self, project: str, done: DoctorPass) -> None:
        if self.settings.diagnose_agent_role not in self.services.agents:
            return  # no agent to ask: reproduced issues wait for a human or a later pass
        waiting = await self.services.gateway.list_issues(
            project, labels=[self.settings.label, self.flaky.state("reproduced").label]
        )
        for issue in waiting:
            rerun = rerun_of(issue)
            if rerun is None:
                done.skipped.append(issue.ref)
                continue

            async def diagnosis(issue: Issue = issue, rerun: Rerun = rerun) -> str:
                role = self.settings.diagnose_agent_role
                return await diagnose(self.services, self.flaky, issue, rerun, role)

            target = await self._step(issue, "diagnose", diagnosis)
            if target is None:
                done.skipped.append(issue.ref)
                continue
            done.diagnosed[issue.ref] = target

    async def _step(self, issue: Issue, role: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """``work`` under a claim on ``issue`` for ``role``, renewed while it runs; None when
        another host holds it or the work raised. A step that raises is re-queued to its
        ready state (attempt k of n) or failed once its attempts are spent, as the janitor
        does for a host that died mid-step (roles/flaky/janitor.py)."""
        claim = await self.claims.claim(issue, role, uuid.uuid4().hex[:12])
        if claim is None:
            return None
        held = [claim]
        renewing = asyncio.create_task(self._renew(held))

        async def still_ours() -> None:
            await self.claims.check(held[0])

        try:
            # Every write others can see is fenced by the claim (SPEC §3), as a role's run.
            with fenced(still_ours):
                try:
                    result: T | None = await work()
                except ClaimLost:
                    raise
                except Exception as error:
                    log.exception("flaky %s step failed: issue=%s run=%s", role, issue.ref,
                                  claim.run)  # fmt: skip
                    await stopped(self.gateway, self.settings.max_attempts, held[0], repr(error))
                    result = None
        except ClaimLost as lost:  # re-queued by a janitor meanwhile: the round is not ours
            log.warning("flaky %s step abandoned: issue=%s: %s", role, issue.ref, lost)
            await self.claims.leases.release(held[0].lease)
            return None
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClaimLost):
                await renewing
        await self.claims.release(held[0])
        return result

    async def _renew(self, held: list[Claim[Lease]]) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.claims.ttl / 3))
            try:
                held[0] = await self.claims.renew(held[0])
            except ForgeError as error:  # GitLab briefly away: the claim lasts until expiry
                log.warning("flaky claim renewal failed: issue=%s#%s: %s",
                            held[0].project, held[0].iid, error)  # fmt: skip

    async def _the_ones(self, project: str) -> set[int]:
        """The iid of each test's one issue: the lowest open iid with its key."""
        by_key = await self.detector.filer.issues_by_key(project, state="opened")
        return {min(issue.iid for issue in issues) for issues in by_key.values()}

    async def _runs_of(self, issue: Issue, key: str, rerun: Rerun) -> tuple[RunOnce, str]:
        return await resumable_runs(self.gateway, self.runner, issue, key, rerun)
