"""GitLab's rate-limit headers, per user and per minute, as GitLab.com sends them.

Every authenticated API answer carries ``RateLimit-Limit`` (requests allowed per minute),
``RateLimit-Observed`` (requests this user made in the current window), ``RateLimit-Remaining``
(the difference, never below 0), ``RateLimit-Reset`` (Unix time the window ends) and
``RateLimit-ResetTime`` (the same as an HTTP date). Windows are fixed minutes. With
``SimConfig.rate_limit_enforced`` a request past the limit is refused with 429 and
``Retry-After``, as GitLab does; by default the simulator only reports.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate

WINDOW_SECONDS = 60


class RateWindows:
    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        if limit < 1:
            raise ValueError(f"rate_limit must be at least 1 request a minute, got {limit}")
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, tuple[int, int]] = {}  # user id -> (window start, count)
        self.totals: Counter[int] = Counter()  # user id -> requests since start (for benches)

    def count(self, user_id: int) -> tuple[dict[str, str], bool]:
        """Count one request of ``user_id``: its headers, and whether it is over the limit."""
        now = self._clock()
        start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        with self._lock:
            began, observed = self._windows.get(user_id, (start, 0))
            observed = observed + 1 if began == start else 1
            self._windows[user_id] = (start, observed)
            self.totals[user_id] += 1
        reset = start + WINDOW_SECONDS
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Observed": str(observed),
            "RateLimit-Remaining": str(max(0, self.limit - observed)),
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": formatdate(reset, usegmt=True),
        }
        over = observed > self.limit
        if over:
            headers["Retry-After"] = str(max(1, int(reset - now)))
        return headers, over
