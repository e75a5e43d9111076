"""The fence every write of a run passes (docs/decisions/0013, 0041): its claim must still
be its own. Part of the engine.

The time half (more than a sixth of the TTL left by this host's clock) is checked before
every write and costs nothing. The round half reads the issue's label events; a write sent
within ``BURST_SECONDS`` of the start of the last such read passes on it, so a burst of
writes (a note to the issue, one to the MR, an MR created just after) costs one read. A
write after the run worked longer than that (an agent's turn, a pipeline) reads again, and
the finishing move always reads on its own (``Claims.held_labels``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from roles.context import RunContext

BURST_SECONDS = 0.5


class RunFence:
    def __init__(
        self,
        ctx: RunContext,
        *,
        burst: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.burst = burst
        self.clock = clock
        self._read_at: float | None = None  # when the last round read that passed began

    async def __call__(self) -> None:
        claims, claim = self.ctx.services.claims, self.ctx.claim
        claims.check_time(claim)
        if self._read_at is not None and self.clock() - self._read_at < self.burst:
            return
        began = self.clock()
        await claims.check(claim)
        self._read_at = began
