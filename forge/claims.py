"""The claim protocol (SPEC §3): no double pickup, across hosts, with nothing shared
but GitLab.

1. A local SQLite lease on ``issue:<project>:<iid>`` keeps this host's workers apart.
2. The labels move ready -> running, refused if the issue is no longer ready.
3. A claim note carries a hidden marker with worker, run, role and expiry.
4. The notes are re-read: among live claim notes posted since the issue last became
   ready, the lowest note id wins (GitLab note ids come from one database sequence).
   A loser deletes its note and releases its lease.
5. The winner renews by editing its note's expiry. Any host finding an expired claim
   may mark it expired and put the issue back to ready.

A round is what happened since the issue last became ready; it is named by the label event
that made it ready. Every visible write of a run is fenced by its claim (:meth:`Claims.check`),
and a re-queue by the round it expires, so a claimer never acts for a round that is not its
own (docs/decisions/0013).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from forge import metrics
from forge.calls import fenced
from forge.claim_notes import (
    ClaimMarker,
    ClaimView,
    Round,
    iso,
    last_added,
    opened_by,
    whole_seconds,
)
from forge.claim_recovery import Recovery
from forge.claim_types import (
    NO_ROUND,
    Claim,
    ClaimLost,
    HeldLease,
    LeaseT,
    LocalLeases,
    lease_key,
    requeue_key,
)
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.ports import IssueTracker
from forge.types import Issue, LabelEvent, Note

__all__ = [
    "NO_ROUND",
    "Claim",
    "ClaimLost",
    "ClaimMarker",
    "ClaimView",
    "Claims",
    "HeldLease",
    "LocalLeases",
    "Round",
    "lease_key",
    "requeue_key",
]

log = logging.getLogger(__name__)


class Claims(Recovery[LeaseT]):
    def __init__(
        self,
        gateway: IssueTracker,
        leases: LocalLeases[LeaseT],
        *,
        worker: str,
        ttl_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,100}", worker):
            raise ValueError(f"worker id {worker!r}: use 1-100 characters of [A-Za-z0-9_.:@-]")
        self.gateway = gateway
        self.leases = leases
        self.worker = worker
        self.ttl = ttl_seconds
        self.clock = clock

    def over(self, gateway: IssueTracker) -> Claims[LeaseT]:
        """These claims (worker, leases, TTL, clock) through another view of the tracker."""
        return Claims(
            gateway, self.leases, worker=self.worker, ttl_seconds=self.ttl, clock=self.clock
        )

    def _expiry(self) -> datetime:
        return whole_seconds(self.clock() + timedelta(seconds=self.ttl))

    async def claim(self, issue: Issue, role: str, run: str) -> Claim[LeaseT] | None:
        """Try to claim ``issue`` for ``role``; None when another worker has it."""
        lease = await self.leases.acquire(
            lease_key(issue.project, issue.iid), self.worker, self.ttl
        )
        if lease is None:
            return None
        note: Note | None = None
        try:
            ready = self.workflow.ready_state(role)
            running = self.workflow.running_state(role)
            try:
                moved = await self.gateway.transition(
                    issue.project, issue.iid, running.name, expect={ready.name}
                )
            except StaleState:
                await self.leases.release(lease)
                metrics.CLAIMS.labels("lost").inc()
                return None
            marker = ClaimMarker(self.worker, run, role, self._expiry())
            note = await self.gateway.post_note(issue.project, issue.iid, marker.body())
            round_ = await self._round(issue.project, issue.iid, role)
            winner = round_.winner(role)
            if winner is None or winner.note.id != note.id:
                log.info(
                    "claim lost: issue=%s role=%s run=%s winner=%s",
                    issue.ref,
                    role,
                    run,
                    winner.marker.worker if winner else None,
                )
                await self.gateway.delete_note(issue.project, issue.iid, note.id)
                await self.leases.release(lease)
                metrics.CLAIMS.labels("lost").inc()
                return None
        except BaseException:
            await self._abandon(issue, lease, note)
            raise
        metrics.CLAIMS.labels("won").inc()
        log.info("claimed: issue=%s role=%s run=%s note=%s", issue.ref, role, run, note.id)
        try:
            # Every re-queue is followed by a claim: its one winner removes the copy of a
            # keyed note (e.g. two janitors' re-queue note) whose poster died before it could.
            await self.gateway.remove_copies(issue.project, issue.iid, round_.notes)
        except ForgeError as error:
            log.warning("could not remove copies of keyed notes: issue=%s: %s", issue.ref, error)
        return Claim(
            issue.project,
            issue.iid,
            role,
            run,
            self.worker,
            note.id,
            marker.expires,
            lease,
            round_.id,
            round_.notes,
            round_.running_event,
            moved=moved,
        )

    async def carry(
        self, held: Claim[LeaseT], issue: Issue, role: str, run: str
    ) -> Claim[LeaseT] | None:
        """Claim ``role`` on ``issue``, which the run holding ``held`` has just moved from its
        own running state straight to ``role``'s running state (a carry-over, decision
        0037); None when that round was taken from us before the note landed.

        No other host can claim it (it never was at ``role``'s ready state), so no notes
        are read: the claim note is posted, then the label events tell the round it rides on,
        the ready-add (unchanged) and the running-add our move made. A ready-add after that
        running-add (a human re-queued it meanwhile) means the round is someone else's: the
        note is deleted (the caller releases the lease)."""
        ready = self.workflow.ready_state(role).label
        running = self.workflow.running_state(role).label
        marker = ClaimMarker(self.worker, run, role, self._expiry())
        # Our own claim's bookkeeping: the move it follows was fenced by ``held``.
        with fenced(None):
            note = await self.gateway.post_note(held.project, held.iid, marker.body())
            events = await self.gateway.label_events(held.project, held.iid)
            opened, added = opened_by(events, ready), last_added(events, running)
            removed = [e for e in events if e.action == "remove" and e.label == running]
            if (
                added is None
                or (opened is not None and opened.id > added.id)
                or any(e.id > added.id for e in removed)
            ):
                log.info("carry-over lost: issue=%s role=%s run=%s", issue.ref, role, run)
                await self.gateway.delete_note(held.project, held.iid, note.id)
                return None
        metrics.CLAIMS.labels("carried").inc()
        log.info("carried over: issue=%s role=%s run=%s note=%s", issue.ref, role, run, note.id)
        return Claim(
            held.project,
            held.iid,
            role,
            run,
            self.worker,
            note.id,
            marker.expires,
            held.lease,
            opened.id if opened else 0,
            # Without the held claim's notes (adopted at a restart) the run reads them.
            (*held.notes, note) if held.notes else (),
            added.id,
            carried=True,
            moved=issue,
        )

    async def _abandon(self, issue: Issue, lease: LeaseT, note: Note | None) -> None:
        """Best effort after a failure mid-claim: never leave our note as a winner."""
        try:
            if note is not None:
                await self.gateway.delete_note(issue.project, issue.iid, note.id)
        finally:
            await self.leases.release(lease)

    async def current(self, project: str, iid: int, ready_label: str) -> ClaimView | None:
        """The winning live claim: the lowest-id claim note posted since the issue last
        became ready and not ended. None if there is none."""
        state = self.workflow.state_for_label(ready_label)
        if state is None or state.role is None:
            raise ValueError(f"{ready_label!r} is no ready state of a role")
        return (await self._round(project, iid, state.role)).live()

    async def _round(self, project: str, iid: int, role: str) -> Round:
        """``role``'s round: its claim notes since the issue last became ready for it, and
        when its running label was last added (one notes read, one label events read)."""
        ready_label = self.workflow.ready_state(role).label
        running_label = self.workflow.running_state(role).label
        # Both reads at once: one round trip less on every claim (decision 0041).
        notes, events = await asyncio.gather(
            self.gateway.notes(project, iid), self.gateway.label_events(project, iid)
        )
        opened = opened_by(events, ready_label)
        epoch = opened.created_at if opened else ""
        added = last_added(events, running_label)
        if added is not None and added.created_at < epoch:
            added = None  # an earlier round's
        # Another role's claim notes are no claims of this round: a carried claim's round
        # holds the previous stage's claim too (docs/decisions/0037).
        views = tuple(
            ClaimView(note, marker)
            for note in notes
            if (marker := ClaimMarker.parse(note.body)) is not None
            and marker.role == role
            and note.created_at >= epoch
        )
        return Round(
            opened.id if opened else 0,
            views,
            added.created_at if added else None,
            tuple(notes),
            added.id if added else 0,
        )

    async def check(self, claim: Claim[LeaseT]) -> None:
        """Raise ClaimLost unless ``claim`` may still write: more than a sixth of the TTL
        left by this host's clock, and its round still the issue's current round (one
        label events read).

        Every re-queue (by a janitor, a human or the run itself) adds the ready label and so
        opens a new round, and a janitor re-queues only a claim expired by its own clock.
        The sixth of the TTL (150 s at the default 900 s, renewed every 300 s) covers a
        write's time in flight (request timeout and retries) and the hosts' clock skew, so a
        write that passed here lands before any janitor may act (docs/decisions/0013)."""
        await self._checked_events(claim)

    async def held_labels(self, claim: Claim[LeaseT]) -> tuple[str, ...] | None:
        """:meth:`check` ``claim``, and from the same label events read the issue's workflow
        labels, when they prove that nothing moved it since the claim's running-add: its one
        workflow label is the claim's running label (replayed from the events, in id order),
        and no workflow label was added after that running-add. The finishing move then
        needs no read of the issue (docs/decisions/0041). None: the events do not prove it
        (an adopted claim, a move already made before a crash); the caller reads the issue."""
        events = await self._checked_events(claim)
        running = self.workflow.running_state(claim.role).label
        scoped = [e for e in events if self.workflow.in_scope(e.label)]
        held: set[str] = set()
        for event in scoped:
            (held.add if event.action == "add" else held.discard)(event.label)
        adds = [e.id for e in scoped if e.action == "add"]
        if not claim.running or held != {running} or max(adds, default=0) != claim.running:
            return None
        return (running,)

    def check_time(self, claim: Claim[LeaseT]) -> None:
        """Raise ClaimLost when less than a sixth of ``claim``'s TTL is left by this host's
        clock (the first half of :meth:`check`; no call)."""
        if claim.expires - self.clock() < timedelta(seconds=self.ttl / 6):
            where = f"{claim.project}#{claim.iid} ({claim.role}, run {claim.run})"
            raise ClaimLost(f"{where}: the claim expires at {iso(claim.expires)}, too soon")

    async def _checked_events(self, claim: Claim[LeaseT]) -> list[LabelEvent]:
        """The issue's label events, read after the time check and judged as :meth:`check`
        says; raises ClaimLost."""
        self.check_time(claim)
        where = f"{claim.project}#{claim.iid} ({claim.role}, run {claim.run})"
        ready_label = self.workflow.ready_state(claim.role).label
        events = await self.gateway.label_events(claim.project, claim.iid)
        opened = opened_by(events, ready_label)
        if (opened.id if opened else 0) != claim.round:
            raise ClaimLost(f"{where}: the issue was re-queued since the claim was won")
        if claim.running:
            added = last_added(events, self.workflow.running_state(claim.role).label)
            if added is None or added.id != claim.running:
                # Left the running state and came back (a carry-over, decision 0037): that
                # stay is another claim's.
                raise ClaimLost(f"{where}: the issue was moved on since the claim was won")
        return events

    async def renew(self, claim: Claim[LeaseT]) -> Claim[LeaseT]:
        """Push the expiry forward in the note and in the local lease."""
        round_ = await self._round(claim.project, claim.iid, claim.role)
        view = round_.live()
        if (
            view is None
            or view.note.id != claim.note_id
            or round_.id != claim.round
            or (claim.running and round_.running_event != claim.running)
        ):
            raise ClaimLost(
                f"{claim.project}#{claim.iid}: claim note {claim.note_id} is no longer the live claim"
            )
        lease = await self.leases.renew(claim.lease, self.ttl)
        if lease is None:
            raise ClaimLost(f"{claim.project}#{claim.iid}: the local lease was lost")
        expires = self._expiry()
        marker = replace(view.marker, expires=expires)
        with fenced(None):  # the claim's own bookkeeping, checked just above
            await self.gateway.edit_note(claim.project, claim.iid, claim.note_id, marker.body())
        return replace(claim, expires=expires, lease=lease)

    async def release(self, claim: Claim[LeaseT], *, keep_lease: bool = False) -> None:
        """End the claim (after the run has moved the issue on). ``keep_lease``: the local
        lease passes to the claim this run carries the issue over to (decision 0037)."""
        marker = ClaimMarker(claim.worker, claim.run, claim.role, claim.expires, ended="released")
        try:
            with fenced(None):  # our own note; the move it follows was fenced
                await self.gateway.edit_note(claim.project, claim.iid, claim.note_id, marker.body())
        finally:
            if not keep_lease:
                await self.leases.release(claim.lease)
