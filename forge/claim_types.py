"""What a claim is, as the protocol (forge/claims.py) and its recovery hand it around: the
claim itself, the local leases it rests on, and the names it is kept under (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from forge.types import Issue, Note


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
    # The issue as GitLab answered the claim's own move (None: adopted at a restart): what
    # the run starts from instead of reading the issue again.
    moved: Issue | None = field(default=None, compare=False, repr=False)


class ClaimLost(Exception):
    """The claim is no longer ours (it expired, was re-queued or taken over): stop acting."""


NO_ROUND = -1  # a claim kept only to be released: it holds no round


def lease_key(project: str, iid: int) -> str:
    return f"issue:{project}:{iid}"


def requeue_key(role: str, round_id: int) -> str:
    """The key of the note that ends ``role``'s round ``round_id`` as expired."""
    return f"expired:{role}:{round_id}"
