"""An in-process event bus: route modules announce what happened (an issue changed, a
branch was pushed); webhooks and the pipeline runner subscribe. Subscribers run as
tracked background tasks so a request never waits for them and shutdown can drain them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimEvent:
    """``kind`` is one of: issue, note, merge_request, pipeline, push, tag_push, job, emoji."""

    kind: str
    project_id: int
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[SimEvent], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, kind: str, callback: Subscriber) -> None:
        self._subscribers[kind].append(callback)

    def emit(self, event: SimEvent) -> None:
        for callback in self._subscribers.get(event.kind, []):
            task = asyncio.get_running_loop().create_task(self._run(callback, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, callback: Subscriber, event: SimEvent) -> None:
        try:
            await callback(event)
        except Exception:
            log.exception(
                "sim event subscriber failed: kind=%s project=%s", event.kind, event.project_id
            )

    async def drain(self) -> None:
        """Wait until every task started so far (and those they started) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
