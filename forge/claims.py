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

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from forge import metrics
from forge.calls import fenced
from forge.claim_notes import (
    ClaimMarker,
    ClaimView,
    Round,
    iso,
    last_added,
    opened_by,
    parse_time,
    whole_seconds,
)
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.ports import IssueTracker
from forge.types import Issue, Note
from workflow import Workflow

__all__ = ["NO_ROUND", "Claim", "ClaimLost", "ClaimMarker", "ClaimView", "Claims", "Round"]

log = logging.getLogger(__name__)


class HeldLease(Protocol):
    @property
    def holder(self) -> str: ...


LeaseT = TypeVar("LeaseT", bound=HeldLease)


class LocalLeases(Protocol[LeaseT]):
    """This host's leases, which keep its own workers apart before GitLab arbitrates
    between hosts (storage.LeaseStore is one; forge does not import storage)."""

    async def acquire(
        self, key: str, holder: str, ttl: float, *, retake: bool = False
    ) -> LeaseT | None: ...

    async def renew(self, lease: LeaseT, ttl: float) -> LeaseT | None: ...

    async def release(self, lease: LeaseT) -> bool: ...

    async def get(self, key: str) -> LeaseT | None: ...


@dataclass(frozen=True)
class Claim(Generic[LeaseT]):
    project: str
    iid: int
    role: str
    run: str
    worker: str
    note_id: int
    expires: datetime
    lease: LeaseT
    round: int  # the label event that opened the round this claim won
    # The notes the claim read to win (its own claim note included): the run's attempt is
    # counted from them instead of reading the notes again. Empty for an adopted claim.
    notes: tuple[Note, ...] = field(default=(), compare=False, repr=False)
    # The label event that added the running label this claim holds (0: not known, not
    # checked). A carried claim's round has no ready-add of its own (docs/decisions/0037).
    running: int = 0
    # Won by a carry-over: its notes are the previous stage's claim read, not the issue's
    # notes as the run starts.
    carried: bool = field(default=False, compare=False)


class ClaimLost(Exception):
    """The claim is no longer ours (it expired, was re-queued or taken over): stop acting."""


NO_ROUND = -1  # a claim kept only to be released: it holds no round


def lease_key(project: str, iid: int) -> str:
    return f"issue:{project}:{iid}"


def requeue_key(role: str, round_id: int) -> str:
    """The key of the note that ends ``role``'s round ``round_id`` as expired."""
    return f"expired:{role}:{round_id}"


class Claims(Generic[LeaseT]):
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

    @property
    def workflow(self) -> Workflow:
        return self.gateway.workflow

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
                await self.gateway.transition(
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
        notes = await self.gateway.notes(project, iid)
        events = await self.gateway.label_events(project, iid)
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
        where = f"{claim.project}#{claim.iid} ({claim.role}, run {claim.run})"
        if claim.expires - self.clock() < timedelta(seconds=self.ttl / 6):
            raise ClaimLost(f"{where}: the claim expires at {iso(claim.expires)}, too soon")
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
