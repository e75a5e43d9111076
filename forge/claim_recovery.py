"""Claims taken back after a restart, and claims expired by a janitor (SPEC §3, decisions
0013 and 0037): the recovery half of the claim protocol, a base of forge.claims.Claims."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Generic

from forge import metrics
from forge.calls import fenced
from forge.claim_notes import ClaimMarker, Round, parse_time
from forge.claim_types import (
    NO_ROUND,
    Claim,
    ClaimLost,
    LeaseT,
    LocalLeases,
    lease_key,
    requeue_key,
)
from forge.gateway import StaleState
from forge.ports import IssueTracker
from forge.types import Issue
from workflow import Workflow

log = logging.getLogger("forge.claims")


class Recovery(Generic[LeaseT]):
    """Adopting our own claims after a restart and expiring dead ones (a base of Claims)."""

    gateway: IssueTracker
    leases: LocalLeases[LeaseT]
    worker: str
    ttl: float
    clock: Callable[[], datetime]

    @property
    def workflow(self) -> Workflow:
        return self.gateway.workflow

    async def _round(self, project: str, iid: int, role: str) -> Round:
        raise NotImplementedError

    async def renew(self, claim: Claim[LeaseT]) -> Claim[LeaseT]:
        raise NotImplementedError

    async def adopt(
        self, issue: Issue, role: str, run: str, *, moved_on: bool = False
    ) -> Claim[LeaseT] | None:
        """Take back our own live claim after a restart (same worker id, same run); None
        when the claim expired into someone else's hands or the issue moved on.

        ``moved_on``: the run had already moved the issue on when it stopped; all that is
        left of its claim is releasing it (which it may have done already)."""
        if moved_on:
            return await self._own_claim_note(issue, role, run)
        running = self.workflow.running_state(role)
        if running.label not in issue.labels:
            return None
        round_ = await self._round(issue.project, issue.iid, role)
        view = round_.live()
        if view is None or view.marker.worker != self.worker or view.marker.run != run:
            return None
        lease = await self._own_lease(issue)
        if lease is None:
            return None
        claim = Claim(
            issue.project,
            issue.iid,
            role,
            run,
            self.worker,
            view.note.id,
            view.marker.expires,
            lease,
            round_.id,
            running=round_.running_event,
        )
        try:
            return await self.renew(claim)
        except ClaimLost as lost:
            # Another host's janitor re-queued it between our reads, or our lease ran out
            # during them: the work is lost, not the host.
            log.warning("claim lost while adopting: issue=%s role=%s run=%s: %s",
                        issue.ref, role, run, lost)  # fmt: skip
            await self.leases.release(lease)
            return None

    async def _own_lease(self, issue: Issue) -> LeaseT | None:
        """Take back, with a whole TTL, the lease a killed process of this worker held.

        Only a restart adopts (the engine skips issues it runs), and one process runs a
        worker id, so a live lease of this worker is the dead process's; the new token fences
        it off. Keeping what the dead grant had left lost live claims under load: adopt's
        GitLab reads outlasted it and the renewal found the lease expired."""
        key = lease_key(issue.project, issue.iid)
        return await self.leases.acquire(key, self.worker, self.ttl, retake=True)

    async def _own_claim_note(self, issue: Issue, role: str, run: str) -> Claim[LeaseT] | None:
        mine = (self.worker, run, role)
        for note in reversed(await self.gateway.notes(issue.project, issue.iid)):
            marker = ClaimMarker.parse(note.body)
            if marker is not None and (marker.worker, marker.run, marker.role) == mine:
                break
        else:
            return None
        lease = await self._own_lease(issue)
        if marker.ended == "expired" or lease is None:
            return None
        # All that is left is releasing it: no round, so no fenced write passes any more.
        return Claim(
            issue.project,
            issue.iid,
            role,
            run,
            self.worker,
            note.id,
            marker.expires,
            lease,
            NO_ROUND,
        )

    async def expire(
        self, issue: Issue, role: str, *, reason: str, target: str | None = None
    ) -> bool:
        """If ``issue`` is running for ``role`` and its live claim has expired (or it has
        had none for a whole TTL since it became running), mark the claim expired and move
        the issue back to ready (or to ``target``, e.g. failed when the attempts are spent)
        with ``reason``. Returns True when it moved the issue.

        Safe on every host at once and from any listing: ``issue`` only names the issue; the
        judgement is made on what is read now, and the move is fenced by the round judged,
        so a stale janitor never re-queues the next claimer's round (docs/decisions/0013)."""
        ready = self.workflow.ready_state(role)
        running = self.workflow.running_state(role)
        fresh = await self.gateway.get_issue(issue.project, issue.iid)
        if running.label not in fresh.labels:
            return False
        judged = await self._round(issue.project, issue.iid, role)
        view = judged.live()
        now = self.clock()
        if view is not None and not view.expired(now):
            return False
        since = parse_time(judged.running_since or fresh.updated_at)
        if view is None and since > now - timedelta(seconds=self.ttl):
            return False  # a claimer may be between moving the labels and posting its note
        if view is not None:
            # Bound to this note: marking an older round's note changes nothing.
            ended = replace(view.marker, ended="expired")
            await self.gateway.edit_note(issue.project, issue.iid, view.note.id, ended.body())

        async def still_judged_round() -> None:
            # Between the transition's read of the labels and its write: another janitor
            # may have re-queued this round and a new claimer taken the next one.
            now_round = await self._round(issue.project, issue.iid, role)
            if (
                now_round.id != judged.id
                or now_round.running_event != judged.running_event
                or now_round.live() is not None
            ):
                raise ClaimLost(f"{fresh.ref}: the {role} round judged expired is over")

        try:
            with fenced(still_judged_round):
                await self.gateway.transition(
                    issue.project, issue.iid, target or ready.name, expect={running.name}
                )
        except (StaleState, ClaimLost) as moved:
            log.info("not re-queued: issue=%s role=%s: %s", fresh.ref, role, moved)
            return False
        # Two janitors that judged the same round may both pass their fences before either
        # PUT lands (GitLab has no compare-and-swap): the second PUT changes nothing, and
        # the note, keyed by the round, is written once.
        await self.gateway.upsert_note(
            issue.project, issue.iid, requeue_key(role, judged.id), reason
        )
        log.info(
            "re-queued expired claim: issue=%s role=%s run=%s",
            fresh.ref,
            role,
            view.marker.run if view else None,
        )
        metrics.CLAIMS.labels("expired").inc()
        return True

    async def running(self, project: str, role: str) -> Sequence[Issue]:
        label = self.workflow.running_state(role).label
        return await self.gateway.list_issues(project, labels=[label])
