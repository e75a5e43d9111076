"""Project access levels of GitLab users, asked once per user and project for a while.

Who may start work and whose comments reach an agent depend on access levels; the engine
asks on every pass, so levels are kept ``max_age`` seconds (a membership change takes
effect within that time) instead of two API calls per issue and pass."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_NAMES = {GUEST: "Guest", REPORTER: "Reporter", DEVELOPER: "Developer"}
ACCESS_NAMES |= {MAINTAINER: "Maintainer", OWNER: "Owner"}


def access_name(level: int) -> str:
    return ACCESS_NAMES.get(level, "no" if level <= 0 else f"level {level}")


class AccessLevels:
    def __init__(
        self,
        lookup: Callable[[str, str], Awaitable[int]],
        *,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._max_age = max_age
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[int, float]] = {}

    async def level(self, project: str, username: str) -> int:
        key = (project, username)
        found = self._known.get(key)
        now = self._clock()
        if found is not None and now - found[1] < self._max_age:
            return found[0]
        level = await self._lookup(project, username)
        self._known[key] = (level, now)
        return level
