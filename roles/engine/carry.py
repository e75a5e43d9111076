"""Carrying an issue over to the next role on this host (docs/decisions/0037): when a run
moves its issue to another role's ready state and this host has a slot for that role, the
host takes the issue straight on, without another host's listing and claim in between. A
base of :class:`roles.engine.loop.Engine`, which it must precede (``Running`` only declares
these methods)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from forge.calls import fenced
from forge.types import Issue
from roles.context import RunContext, Services
from roles.engine.admission import Role, Verdict
from workflow import StateKind

log = logging.getLogger("roles.engine")


class CarryingOver:
    """Free slots per role, and the carry-over decisions of a finishing or resumed run."""

    services: Services
    roles: dict[str, Role]
    _inflight: Mapping[tuple[str, int], Any]

    async def paused(self, project: str) -> bool:
        raise NotImplementedError

    def _slots(self, role: str, *, leaving: tuple[str, int] | None = None) -> int:
        """Free slots for ``role``; ``leaving``: an issue whose run is ending (its slot is
        as good as free)."""
        settings = self.services.roles
        others = {key: entry for key, entry in self._inflight.items() if key != leaving}
        total = settings.max_concurrent - len(others)
        mine = sum(1 for entry in others.values() if entry.role == role)
        return min(total, settings.by_name()[role].concurrency - mine)

    async def _carry_role(self, ctx: RunContext, target: str) -> Role | None:
        """The role this host carries the issue over to as ``ctx``'s run moves it to
        ``target`` (decision 0037): another role's ready state, enabled, with a slot here
        once this run's is free, the project not paused, and the role admitting the issue
        now. None: the issue goes to ``target`` for whoever claims it."""
        wf = self.services.workflow
        state = wf.state(target)
        name = state.role
        if (
            state.kind is not StateKind.READY
            or name is None
            or name == ctx.role
            or not ctx.claim.notes  # adopted after a restart: its attempt count is not known
            or name not in self.roles
            or not self.services.roles.by_name()[name].enabled
            or self._slots(name, leaving=(ctx.issue.project, ctx.issue.iid)) <= 0
        ):
            return None
        try:
            if await self.paused(ctx.issue.project):
                return None
            with fenced(None):  # asking writes nothing
                admission = await self.roles[name].admit(self.services, ctx.issue)
        except Exception:  # the ordinary move then; the next pass asks again
            log.exception("carry-over not decided: issue=%s role=%s", ctx.issue.ref, name)
            return None
        return self.roles[name] if admission.verdict is Verdict.GO else None

    async def _carry_again(self, ctx: RunContext, moved: str) -> tuple[Role, Issue] | None:
        """A resumed run had carried the issue over to ``moved`` (a running state) when it was
        killed: the claim is taken now unless it was (this restart adopts that one), the
        issue moved on, or there is no slot. Left alone, the janitor re-queues it a TTL after
        the move."""
        wf = self.services.workflow
        name = wf.state(moved).role
        key = (ctx.issue.project, ctx.issue.iid)
        if name is None or name not in self.roles or self._slots(name, leaving=key) <= 0:
            return None
        issue = await self.services.gateway.get_issue(*key)
        if wf.state(moved).label not in issue.labels:
            return None
        ready = wf.ready_state(name).label
        if await self.services.claims.current(*key, ready) is not None:
            return None
        return self.roles[name], issue
