"""The synchronous python-gitlab client, made safe to use from the event loop.

- Calls run in a dedicated bounded thread pool; each thread has its own ``gitlab.Gitlab``
  (python-gitlab sessions are not safe to share across threads).
- Retries are ours, not python-gitlab's: a ``requests`` response hook turns 429 and 5xx
  answers into exceptions before python-gitlab sees them, so one loop owns the policy:
  exponential backoff with full jitter, ``Retry-After`` honoured, bounded in count and in
  time, sleeping on the event loop rather than in a pool thread.
- A write that is not idempotent (a POST that creates something) is retried blindly only
  when GitLab cannot have performed it: a 429 (GitLab's rate limiter answers before the
  request reaches the application) or a connection that never opened. When its outcome is
  unknown (a 5xx, a read timeout, a connection reset or dropped after the request was
  sent), the caller's ``find_existing`` looks for what it would have created before any
  retry; found, that is the answer; without a lookup the call fails with
  :class:`ForgeOutcomeUnknown` instead of risking a duplicate (docs/decisions/0015).
- Every other failure becomes a typed :class:`ForgeError` carrying GitLab's message.
- Objects are built once per thread (``forge/thread_client.py``): a python-gitlab project
  handle creates some eighty managers, an issue a dozen, once about 15% of a worker's CPU;
  the ``requests.Session`` keeps no cookies and reads the environment's proxies once.
- The hot calls are raw (``forge/raw_http.py``): plain dicts from the JSON, over one
  kept-alive connection per thread (``forge/lean_http.py``, decision 0049), whose failures
  fall into the same three kinds: an answer worth retrying, never sent, maybe performed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import gitlab
import gitlab.exceptions
import requests
import urllib3.exceptions

from forge import metrics
from forge.lean_http import (
    Answer,
    LeanHttp,
    MaybeSent,
    NeverSent,
    Transient,
    lean_of,
    message_of,
    retry_after_of,
)
from forge.rate import RateBudget
from forge.settings import GitLabSettings
from forge.thread_client import build_gitlab

log = logging.getLogger(__name__)

T = TypeVar("T")


class ForgeError(Exception):
    """A GitLab call failed. ``status`` is the HTTP status (None: no answer at all)."""

    def __init__(self, operation: str, message: str, status: int | None = None) -> None:
        self.operation = operation
        self.message = message
        self.status = status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"GitLab {operation} failed ({where}): {message}")


class ForgeBadRequest(ForgeError):
    """400/422: the request was malformed or semantically refused."""


class ForgeUnauthorized(ForgeError):
    """401: the token is missing, wrong or expired."""


class ForgeForbidden(ForgeError):
    """403 (and 405 for refused merges): the token may not do this."""


class ForgeNotFound(ForgeError):
    """404: no such object, or the token cannot see it."""


class ForgeConflict(ForgeError):
    """409: e.g. an MR already exists for the branch, or the head sha moved."""


class ForgeUnavailable(ForgeError):
    """5xx, 429 or connection errors persisted past the retry budget."""


class ForgeOutcomeUnknown(ForgeUnavailable):
    """A write that may not be repeated failed in a way that leaves open whether GitLab
    performed it, and there is no lookup to tell: it was not retried."""


_BY_STATUS: dict[int, type[ForgeError]] = {
    400: ForgeBadRequest,
    401: ForgeUnauthorized,
    403: ForgeForbidden,
    404: ForgeNotFound,
    405: ForgeForbidden,
    409: ForgeConflict,
    422: ForgeBadRequest,
}


def _raise_transient(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise Transient(
            status,
            retry_after_of(response.headers),
            message_of(response.content) or response.reason or str(status),
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    budget_seconds: float = 120.0
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)];
        a server's Retry-After is a floor, never shortened."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(backoff, retry_after) if retry_after is not None else backoff


class GitLabClient:
    def __init__(
        self,
        settings: GitLabSettings,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._token = token
        self._retry = retry or RetryPolicy(settings.max_retries, settings.retry_budget_seconds)
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="gitlab")
        self._local = threading.local()
        self._leans: list[LeanHttp] = []
        self.budget = RateBudget(
            share=settings.rate_limit_share, limit_per_minute=settings.rate_limit_per_minute
        )

    @property
    def url(self) -> str:
        return self._settings.url

    def _gitlab(self) -> gitlab.Gitlab:
        client: gitlab.Gitlab | None = getattr(self._local, "client", None)
        if client is None:
            client = build_gitlab(
                self._settings,
                self._token,
                [self._requests_answer, _raise_transient],
                answered=self._answered,
            )
            lean = lean_of(client)
            if lean is not None:
                self._leans.append(lean)  # closed with the client
            self._local.client = client
        return client

    def _requests_answer(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """The ``requests`` response hook: every answer python-gitlab gets, retried ones
        included, counted as the lean path counts its own."""
        self._answered(Answer(response.status_code, response.headers))

    def _answered(self, answer: Answer) -> None:
        """Every answer from GitLab, on either path: the metrics and the rate budget."""
        metrics.gitlab_response(answer)
        self.budget.record(answer.headers)

    async def call(
        self,
        operation: str,
        fn: Callable[[gitlab.Gitlab], T],
        *,
        once: bool = False,
        find_existing: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``fn(gl)`` in the pool, retrying transient failures per the policy.

        ``once``: ``fn`` must not be performed twice (a POST creating something). A failure
        that leaves its outcome unknown is then followed by ``find_existing()`` (given
        implies ``once``): what it finds is returned, None means "not performed" and the
        call is retried. Without ``find_existing`` such a failure raises
        :class:`ForgeOutcomeUnknown`."""
        once = once or find_existing is not None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._pool, lambda: fn(self._gitlab()))
            except Transient as error:
                status, retry_after, message = error.status, error.retry_after, error.message
                performed_maybe = status != 429
            except (NeverSent, MaybeSent) as error:
                status, retry_after, message = None, None, str(error)
                performed_maybe = isinstance(error, MaybeSent)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as error:
                status, retry_after, message = None, None, type(error).__name__
                performed_maybe = not _never_sent(error)
            except gitlab.exceptions.GitlabError as error:
                raise _typed(operation, error) from None
            unknown = once and performed_maybe
            if unknown and find_existing is None:
                raise ForgeOutcomeUnknown(
                    operation,
                    f"{message}: GitLab may or may not have performed it, and it is not "
                    "retried blindly; look before doing it again",
                    status,
                )
            delay = self._retry.delay(attempt, retry_after)
            elapsed = time.monotonic() - started
            give_up = attempt >= self._retry.max_retries or (
                elapsed + delay > self._retry.budget_seconds
            )
            if not give_up:
                log.info(
                    "gitlab %s: %s, retry %d in %.2fs",
                    operation, status or message, attempt + 1, delay,
                )  # fmt: skip
                # Before the lookup too: a write still in flight gets the time to land.
                await self._sleep(delay)
            if unknown and find_existing is not None:
                found = await find_existing()
                if found is not None:
                    log.info("gitlab %s: performed after all (found it); not retried", operation)
                    return found
            if give_up:
                raise ForgeUnavailable(
                    operation,
                    f"{message} (gave up after {attempt + 1} attempts, {elapsed:.1f}s)",
                    status,
                )
            attempt += 1

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        for lean in self._leans:  # the pool's threads are gone: nothing uses them any more
            lean.close()


def _never_sent(error: Exception) -> bool:
    """True when the request cannot have reached GitLab: the connection was never made
    (refused, unresolvable, connect timeout). A read timeout, a reset or a dropped answer
    may come after GitLab performed the request."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError) and error.args:
        reason = getattr(error.args[0], "reason", None)
        return isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
    return False


def _typed(operation: str, error: gitlab.exceptions.GitlabError) -> ForgeError:
    status = error.response_code
    message = (
        error.error_message if isinstance(error.error_message, str) else str(error.error_message)
    )
    cls = _BY_STATUS.get(status or 0, ForgeError)
    return cls(operation, message, status)
