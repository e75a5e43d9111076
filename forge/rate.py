"""GitLab's rate limit as a budget: this process's calls per minute, and what GitLab says is left.

GitLab limits each user's API requests per minute (GitLab.com: 2,000 for an authenticated
user) and reports it on every answer in ``RateLimit-*`` headers. A fleet of hosts shares one
bot user, so the headers are the truth about the whole fleet; this process's own count says
how much of it this host takes. :class:`RateBudget` keeps both. Above ``share`` of the limit
it asks the housekeeping jobs (the poll and the janitor) to slow down, so the calls that are
left go to the runs in flight (docs/decisions/0029). Thread-safe: the response hook runs in
the GitLab client's pool threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateSnapshot:
    calls_last_minute: int
    """Answers this process received from GitLab in the last 60 seconds (retries included)."""
    limit: int | None
    """``RateLimit-Limit`` of the newest answer whose window has not ended, else None."""
    remaining: int | None
    observed: int | None
    reset_at: float | None
    """Unix time the window of ``remaining`` ends."""
    used: float
    """Share of the limit used: GitLab's ``Observed / Limit`` while its window lasts, else this
    process's calls of the last minute over the configured limit."""
    share: float
    """Above this share of the limit, polling and the janitor slow down."""

    @property
    def throttled(self) -> bool:
        return self.used >= self.share

    def describe(self, now: float) -> str:
        mine = f"{self.calls_last_minute} calls in the last minute"
        if self.limit is None or self.remaining is None:
            gitlab = "GitLab sent no RateLimit headers"
        else:
            reset = f", resets in {max(0, round((self.reset_at or now) - now))} s"
            gitlab = f"{self.remaining} of {self.limit} requests left this minute{reset}"
        state = (
            f"above {self.share:.0%}: polling and janitor slowed"
            if self.throttled
            else f"{self.used:.0%} used (polling slows above {self.share:.0%})"
        )
        return f"{gitlab}; {mine}; {state}"


class RateBudget:
    def __init__(
        self,
        *,
        share: float = 0.8,
        limit_per_minute: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"rate budget share must be in (0, 1], got {share}")
        if limit_per_minute < 1:
            raise ValueError(f"rate limit must be at least 1 a minute, got {limit_per_minute}")
        self.share = share
        self.limit_per_minute = limit_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: deque[float] = deque()
        self.answered = 0  # every answer counted since the start (a list's pages each count)
        self._limit: int | None = None
        self._remaining: int | None = None
        self._observed: int | None = None
        self._reset_at: float | None = None

    def record(self, headers: Mapping[str, str]) -> None:
        """Count one answer from GitLab and keep its ``RateLimit-*`` headers, if it had any."""
        now = self._clock()
        limit = _int(headers.get("RateLimit-Limit"))
        remaining = _int(headers.get("RateLimit-Remaining"))
        observed = _int(headers.get("RateLimit-Observed"))
        reset_at = _int(headers.get("RateLimit-Reset"))
        with self._lock:
            self.answered += 1
            self._calls.append(now)
            self._forget(now)
            if limit is not None and limit > 0 and remaining is not None:
                self._limit, self._remaining = limit, remaining
                self._observed = observed if observed is not None else limit - remaining
                self._reset_at = float(reset_at) if reset_at is not None else now + WINDOW_SECONDS

    def snapshot(self) -> RateSnapshot:
        now = self._clock()
        with self._lock:
            self._forget(now)
            calls = len(self._calls)
            live = self._reset_at is not None and now < self._reset_at
            limit = self._limit if live else None
            remaining = self._remaining if live else None
            observed = self._observed if live else None
            reset_at = self._reset_at if live else None
        if limit is not None and observed is not None:
            used = observed / limit
        else:
            used = calls / self.limit_per_minute
        return RateSnapshot(calls, limit, remaining, observed, reset_at, used, self.share)

    def slowdown(self) -> float:
        """How many times longer the housekeeping jobs should wait: 1 below the share, rising
        to 8 as the limit is reached (a poll every 30 s becomes one every 4 minutes)."""
        snapshot = self.snapshot()
        if not snapshot.throttled:
            return 1.0
        over = (snapshot.used - self.share) / max(1e-9, 1 - self.share)
        return 2.0 + 6.0 * min(1.0, over)

    def _forget(self, now: float) -> None:
        while self._calls and self._calls[0] <= now - WINDOW_SECONDS:
            self._calls.popleft()


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None  # a malformed header tells nothing; the last good value stays
