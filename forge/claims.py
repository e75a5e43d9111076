"""The claim protocol (DESIGN §3): no double pickup, across hosts, with nothing shared
but GitLab.

1. A local SQLite lease on ``issue:<project>:<iid>`` keeps this host's workers apart.
2. The labels move ready -> running, refused if the issue is no longer ready.
3. A claim note carries a hidden marker with worker, run, role and expiry.
4. The notes are re-read: among live claim notes posted since the issue last became
   ready, the lowest note id wins (GitLab note ids come from one database sequence).
   A loser deletes its note and releases its lease.
5. The winner renews by editing its note's expiry. Any host finding an expired claim
   may mark it expired and put the issue back to ready.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from forge import metrics
from forge.gateway import Gateway, StaleState
from forge.types import Issue, Note
from workflow import Workflow

log = logging.getLogger(__name__)

_MARKER = re.compile(r"<!-- crewline:claim ([^<>]*?) -->")
_FIELD = re.compile(r"(\w+)=(\S+)")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _whole_seconds(moment: datetime) -> datetime:
    # The note carries whole seconds; what the claimer holds must equal what others read.
    return moment.replace(microsecond=0)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ClaimMarker:
    worker: str
    run: str
    role: str
    expires: datetime
    ended: str | None = None  # "released" | "expired" once the claim is over

    def render(self) -> str:
        fields = (
            f"worker={self.worker} run={self.run} role={self.role} expires={_iso(self.expires)}"
        )
        if self.ended:
            fields += f" ended={self.ended}"
        return f"<!-- crewline:claim {fields} -->"

    @classmethod
    def parse(cls, body: str) -> ClaimMarker | None:
        match = _MARKER.search(body)
        if match is None:
            return None
        fields = dict(_FIELD.findall(match.group(1)))
        try:
            return cls(
                worker=fields["worker"],
                run=fields["run"],
                role=fields["role"],
                expires=_parse_time(fields["expires"]),
                ended=fields.get("ended"),
            )
        except (KeyError, ValueError):
            return None  # a hand-edited or foreign marker never wins a claim

    def body(self) -> str:
        state = {
            None: f"claimed this issue for **{self.role}** (run `{self.run}`); the claim expires at "
            f"{_iso(self.expires)} unless renewed.",
            "released": f"finished its **{self.role}** run `{self.run}` and released the claim.",
            "expired": f"did not renew its **{self.role}** claim (run `{self.run}`); it expired at "
            f"{_iso(self.expires)}.",
        }[self.ended]
        return f"crewline worker `{self.worker}` {state}\n\n{self.render()}"


class HeldLease(Protocol):
    @property
    def holder(self) -> str: ...


LeaseT = TypeVar("LeaseT", bound=HeldLease)


class LocalLeases(Protocol[LeaseT]):
    """This host's leases, which keep its own workers apart before GitLab arbitrates
    between hosts (storage.LeaseStore is one; forge does not import storage)."""

    async def acquire(self, key: str, holder: str, ttl: float) -> LeaseT | None: ...

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


@dataclass(frozen=True)
class ClaimView:
    """The live claim on an issue as any host sees it (the winning note)."""

    note: Note
    marker: ClaimMarker

    def expired(self, now: datetime) -> bool:
        return self.marker.expires <= now


class ClaimLost(Exception):
    """Renewal found that the claim is no longer ours (it expired and was taken over)."""


def _note_id(view: ClaimView) -> int:
    return view.note.id


def lease_key(project: str, iid: int) -> str:
    return f"issue:{project}:{iid}"


class Claims(Generic[LeaseT]):
    def __init__(
        self,
        gateway: Gateway,
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
        return _whole_seconds(self.clock() + timedelta(seconds=self.ttl))

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
            winner = await self._round_winner(issue.project, issue.iid, ready.label, role)
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
        return Claim(
            issue.project, issue.iid, role, run, self.worker, note.id, marker.expires, lease
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
        views = await self._since_ready(project, iid, ready_label)
        return min((v for v in views if v.marker.ended is None), key=_note_id, default=None)

    async def _round_winner(
        self, project: str, iid: int, ready_label: str, role: str
    ) -> ClaimView | None:
        """Who won this round: the lowest-id claim note for ``role`` since the issue last
        became ready, ended or not. A winner that already finished (and released) still won:
        a slow claimer that read the issue as ready before the winner moved it must lose
        the round, not inherit it."""
        views = await self._since_ready(project, iid, ready_label)
        return min((v for v in views if v.marker.role == role), key=_note_id, default=None)

    async def _since_ready(self, project: str, iid: int, ready_label: str) -> list[ClaimView]:
        """Every claim note posted since the issue last became ready (this round's)."""
        notes = await self.gateway.notes(project, iid)
        epoch = await self._ready_epoch(project, iid, ready_label)
        return [
            ClaimView(note, marker)
            for note in notes
            if (marker := ClaimMarker.parse(note.body)) is not None and note.created_at >= epoch
        ]

    async def _ready_epoch(self, project: str, iid: int, ready_label: str) -> str:
        events = await self.gateway.label_events(project, iid)
        adds = [
            event.created_at
            for event in events
            if event.action == "add" and event.label == ready_label
        ]
        return max(adds, default="")

    async def renew(self, claim: Claim[LeaseT]) -> Claim[LeaseT]:
        """Push the expiry forward in the note and in the local lease."""
        ready_label = self.workflow.ready_state(claim.role).label
        view = await self.current(claim.project, claim.iid, ready_label)
        if view is None or view.note.id != claim.note_id:
            raise ClaimLost(
                f"{claim.project}#{claim.iid}: claim note {claim.note_id} is no longer the live claim"
            )
        lease = await self.leases.renew(claim.lease, self.ttl)
        if lease is None:
            raise ClaimLost(f"{claim.project}#{claim.iid}: the local lease was lost")
        expires = self._expiry()
        marker = replace(view.marker, expires=expires)
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
        view = await self.current(issue.project, issue.iid, self.workflow.ready_state(role).label)
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
        )
        return await self.renew(claim)

    async def _own_lease(self, issue: Issue) -> LeaseT | None:
        key = lease_key(issue.project, issue.iid)
        lease = await self.leases.get(key)
        if lease is None:
            lease = await self.leases.acquire(key, self.worker, self.ttl)
        if lease is None or lease.holder != self.worker:
            return None
        return lease

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
        return Claim(
            issue.project, issue.iid, role, run, self.worker, note.id, marker.expires, lease
        )

    async def release(self, claim: Claim[LeaseT]) -> None:
        """End the claim (after the run has moved the issue on)."""
        marker = ClaimMarker(claim.worker, claim.run, claim.role, claim.expires, ended="released")
        try:
            await self.gateway.edit_note(claim.project, claim.iid, claim.note_id, marker.body())
        finally:
            await self.leases.release(claim.lease)

    async def expire(
        self, issue: Issue, role: str, *, reason: str, target: str | None = None
    ) -> bool:
        """If ``issue`` is running for ``role`` and its live claim has expired (or it has
        had none for a whole TTL), mark the claim expired and move the issue back to ready
        (or to ``target``, e.g. failed when the attempts are spent) with ``reason``.
        Returns True when it moved the issue. Safe to run on every host at once."""
        ready = self.workflow.ready_state(role)
        running = self.workflow.running_state(role)
        view = await self.current(issue.project, issue.iid, ready.label)
        now = self.clock()
        if view is not None and not view.expired(now):
            return False
        if view is None and _parse_time(issue.updated_at) > now - timedelta(seconds=self.ttl):
            return False  # a claimer may be between moving the labels and posting its note
        if view is not None:
            ended = replace(view.marker, ended="expired")
            await self.gateway.edit_note(issue.project, issue.iid, view.note.id, ended.body())
        try:
            await self.gateway.transition(
                issue.project, issue.iid, target or ready.name, expect={running.name}
            )
        except StaleState:
            return False
        await self.gateway.post_note(issue.project, issue.iid, reason)
        log.info("re-queued expired claim: issue=%s role=%s", issue.ref, role)
        metrics.CLAIMS.labels("expired").inc()
        return True

    async def running(self, project: str, role: str) -> Sequence[Issue]:
        label = self.workflow.running_state(role).label
        return await self.gateway.list_issues(project, labels=[label])
