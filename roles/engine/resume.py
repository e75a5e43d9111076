"""Resuming after a crash or restart: this worker's interrupted runs and the claims a crash
left before their run recorded them (docs/decisions/0007, 0013). Part of the engine."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from forge.types import Issue
from roles.context import HostClaim, Services
from roles.engine.admission import Role
from roles.qa.parking import ParkedRuns
from storage import Run, RunStatus

log = logging.getLogger("roles.engine")


class Resuming:
    """The engine's resumption (a base of :class:`roles.engine.loop.Engine`)."""

    services: Services
    roles: dict[str, Role]
    _inflight: dict[tuple[str, int], Any]
    _resume_pending: bool
    parked: ParkedRuns

    def _launch(self, role: Role, issue: Issue, claim: HostClaim, resumed: Run | None) -> None:
        raise NotImplementedError

    async def resume(self) -> int:
        """Pick up this worker's runs that a crash or restart interrupted: those recorded in
        SQLite, and claims of ours that a crash left before their run recorded them."""
        resumed, failed = 0, 0
        try:  # a keyed note posted just before a kill may have a copy to remove (SPEC §10)
            checked = await self.services.gateway.finish_pending_notes()
        except Exception:
            failed += 1
            log.exception("could not finish the owed note checks, trying again on the next pass")
        else:
            if checked:
                log.info("finished the note checks a crash left owed: %s", ", ".join(checked))
        unclaimed: list[Run] = []
        for run in await self.services.storage.runs.active():
            key = (run.project, run.iid)
            if run.worker != self.services.worker or key in self._inflight or key in self.parked:
                continue
            steps = await self.services.storage.runs.steps(run.id)
            if run.stage in self.roles and not isinstance(steps.get("claim"), dict):
                unclaimed.append(run)  # killed between claiming and recording the claim
                continue
            try:
                resumed += await self._resume_run(run, steps)
            except Exception:  # e.g. GitLab away: left unfinished, tried on the next pass
                failed += 1
                log.exception(
                    "could not resume, trying again on the next pass: issue=%s#%s role=%s run=%s",
                    run.project, run.iid, run.stage, run.id,
                )  # fmt: skip
        resumed += await self._adopt_unrecorded_claims()
        for run in unclaimed:
            if (run.project, run.iid) not in self._inflight:
                await self._abandon_stale(run)
        self._resume_pending = failed > 0
        return resumed

    async def _resume_run(self, run: Run, steps: Mapping[str, Any]) -> int:
        role = self.roles.get(run.stage)
        claimed = steps.get("claim")
        if role is None or not isinstance(claimed, dict):
            await self._abandon_stale(run)
            return 0
        issue = await self.services.gateway.get_issue(run.project, run.iid)
        # A run killed while finishing may have moved the issue on already.
        claim = await self.services.claims.adopt(
            issue, run.stage, str(claimed["run"]), moved_on="moved" in steps
        )
        if claim is None:
            await self._abandon_stale(run)
            return 0
        log.info("resuming run: issue=%s role=%s attempt=%s", issue.ref, role.name, run.attempt)
        self._launch(role, issue, claim, resumed=run)
        return 1

    async def _adopt_unrecorded_claims(self) -> int:
        """Our live claims on running issues that no run of ours holds: a crash came between
        claiming and recording the run. Only this worker id posts them (one process per id),
        so the run is started (or its unrecorded row taken back) under the same claim."""
        adopted = 0
        wf = self.services.workflow
        for project in self.services.projects:
            # The project's one listing (decision 0028), which the first pass reads next:
            # not a listing per role.
            listing = await self.services.gateway.issues.current(project)
            for name, role in self.roles.items():
                ready = wf.ready_state(name).label
                for issue in listing.at(wf.running_state(name).label):
                    key = (issue.project, issue.iid)
                    if key in self._inflight or key in self.parked:
                        continue
                    try:
                        adopted += await self._adopt_unrecorded(issue, name, role, ready)
                    except Exception:  # the janitor recovers it once the claim expires
                        log.exception(
                            "could not adopt our claim: issue=%s role=%s", issue.ref, name
                        )
        return adopted

    async def _adopt_unrecorded(self, issue: Issue, name: str, role: Role, ready: str) -> int:
        claims = self.services.claims
        view = await claims.current(issue.project, issue.iid, ready)
        if view is None or view.marker.worker != claims.worker:
            return 0
        if await self._ended_locally(issue, name, view.marker.run):
            return 0  # e.g. abandoned: the janitor recovers the issue
        claim = await claims.adopt(issue, name, view.marker.run)
        if claim is None:
            return 0
        log.info("resuming an unrecorded claim: issue=%s role=%s", issue.ref, name)
        self._launch(role, issue, claim, resumed=None)
        return 1

    async def _ended_locally(self, issue: Issue, role: str, claim_run: str) -> bool:
        runs = self.services.storage.runs
        latest = await runs.latest(issue.project, issue.iid, role)
        if latest is None or not latest.finished:
            return False
        claimed = (await runs.steps(latest.id)).get("claim")
        return isinstance(claimed, dict) and claimed.get("run") == claim_run

    async def _abandon_stale(self, run: Run) -> None:
        await self.services.storage.runs.finish(
            run.id, RunStatus.ABANDONED, "the claim was no longer ours after a restart"
        )
