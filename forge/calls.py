"""Every GitLab call goes through here: screened by the guard when it writes, and
written to the audit trail whatever its outcome. A write that creates something says how
to find it (``find_existing``), so a lost answer is never followed by a second copy.

A write may be *fenced*: a check installed for the current task (a run holding a claim, a
janitor re-queueing one round) is awaited right before the write goes out and refuses it
by raising when the caller's right to act is gone (docs/decisions/0013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import gitlab

from forge import metrics
from forge.client import ForgeError, GitLabClient
from forge.guard import Guard, GuardBlocked
from forge.sink import unmark_payload

log = logging.getLogger(__name__)

T = TypeVar("T")

Fence = Callable[[], Awaitable[None]]
# Per task (asyncio copies the context into the tasks a run starts): many runs share one
# gateway, each with its own claim.
_FENCE: ContextVar[Fence | None] = ContextVar("crewline_write_fence", default=None)

# Screening costs CPU time in proportion to the text (about 0.1-0.3 s per MB on a loaded
# machine): a large write (a commit's files, a long CI excerpt) is screened in a worker
# thread so the event loop keeps serving other runs, Discord and claim renewals meanwhile.
# Below this size the thread hop would cost more than the screening.
SCREEN_IN_THREAD_CHARS = 32_000


def screened_size(value: object) -> int:
    """Characters (or bytes) of text the guard will read in ``value``, nested included."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Mapping):
        return sum(screened_size(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(screened_size(item) for item in value)
    return 0


async def off_loop_if_large(size: int, work: Callable[[], T]) -> T:
    """``work()`` (guard screening), in a worker thread when ``size`` is large."""
    if size > SCREEN_IN_THREAD_CHARS:
        return await asyncio.to_thread(work)
    return work()


@contextlib.contextmanager
def fenced(check: Fence | None) -> Iterator[None]:
    """Await ``check`` before every write made in this context (``None``: no fence, e.g.
    for the claim's own renewal and release)."""
    token = _FENCE.set(check)
    try:
        yield
    finally:
        _FENCE.reset(token)


async def check_fence() -> None:
    """Raise if the current context's fence refuses writes (git pushes call this too)."""
    check = _FENCE.get()
    if check is not None:
        await check()


class AuditSink(Protocol):
    """What the gateway needs of the audit trail (``storage.AuditLog`` satisfies it)."""

    async def append(
        self, who: str, what: str, target: str, payload: Any, verdict: str = "ok"
    ) -> Any: ...

    async def record_read(self, who: str, what: str, target: str, verdict: str = "ok") -> None:
        """Reads are counted, not written one row each (``storage.AuditLog`` aggregates them)."""


class AuditedCalls:
    def __init__(
        self, client: GitLabClient, guard: Guard, audit: AuditSink | None, who: str
    ) -> None:
        self.client = client
        self.guard = guard
        self.audit = audit
        self.who = who

    async def read(
        self,
        operation: str,
        target: str,
        params: Mapping[str, Any],
        fn: Callable[[gitlab.Gitlab], T],
    ) -> T:
        return await self._call(operation, target, dict(params), fn, read=True)

    async def write(
        self,
        operation: str,
        target: str,
        payload: Mapping[str, Any],
        fn: Callable[[gitlab.Gitlab, dict[str, Any]], T],
        *,
        text_fields: tuple[str, ...] = (),
        branch_fields: tuple[str, ...] = (),
        content_fields: tuple[str, ...] = (),
        redact_fields: tuple[str, ...] = (),
        once: bool = False,
        find_existing: Callable[[dict[str, Any]], Awaitable[T | None]] | None = None,
    ) -> T:
        """Unmark ``payload`` (:func:`forge.sink.unmark`: hidden markers only where crewline
        sealed them), screen it (all or nothing), then send the screened payload with ``fn``.

        Text fields have GitLab quick actions neutralised; branch names and file contents
        are checked but never rewritten. ``redact_fields`` hold text crewline composed from
        material it quotes (CI logs, test output, goal text): findings there are replaced
        by ``[redacted: <rule>]`` instead of refusing the write. ``once`` and
        ``find_existing`` (called with the screened payload, i.e. what was sent) are
        :meth:`GitLabClient.call`'s: a write that must not happen twice, and how to find it
        when its answer was lost.
        """
        # The sink first, for every field but file contents and branch names: markers
        # only where crewline sealed them (forge/sink.py). Here, so no write can skip it.
        payload = unmark_payload(payload, keep=(*branch_fields, *content_fields))
        size = screened_size(payload)
        original = payload
        payload = await off_loop_if_large(
            size, lambda: self._redacted(operation, target, original, redact_fields)
        )
        redacted = payload
        try:
            screened = await off_loop_if_large(
                size,
                lambda: self.screen(
                    operation, redacted, text_fields, branch_fields, content_fields
                ),
            )
        except GuardBlocked as blocked:
            await self._audit(operation, target, payload, f"blocked:{blocked.rule}")
            log.warning("guard blocked %s on %s: %s", operation, target, blocked.rule)
            metrics.GUARD_FINDINGS.labels(blocked.rule).inc()
            raise
        await check_fence()  # last, right before the write: the narrowest window
        lookup = None if find_existing is None else lambda: find_existing(screened)
        return await self._call(
            operation,
            target,
            screened,
            lambda gl: fn(gl, screened),
            once=once,
            find_existing=lookup,
        )

    def _redacted(
        self, operation: str, target: str, payload: Mapping[str, Any], fields: tuple[str, ...]
    ) -> Mapping[str, Any]:
        if not fields:
            return payload
        redacted = dict(payload)
        for name in fields:
            if isinstance(payload.get(name), str):
                redacted[name], findings = self.guard.redact(
                    payload[name], where=f"{operation}.{name}"
                )
                if findings:
                    rules = sorted({finding.rule for finding in findings})
                    log.info("guard redacted %s on %s: %s", operation, target, ", ".join(rules))
        return redacted

    def screen(
        self,
        operation: str,
        payload: Mapping[str, Any],
        text_fields: tuple[str, ...],
        branch_fields: tuple[str, ...],
        content_fields: tuple[str, ...],
    ) -> dict[str, Any]:
        screened = dict(payload)
        for name in branch_fields:
            if isinstance(payload.get(name), str):
                self.guard.screen_branch(payload[name])
        for name in content_fields:
            value = payload.get(name)
            if isinstance(value, (str, bytes)):
                self.guard.screen_content(value, where=f"{operation}.{name}")
        rest = {
            k: v for k, v in payload.items() if k not in branch_fields and k not in content_fields
        }
        screened.update(self.guard.screen_payload(rest, where=operation, text_fields=text_fields))
        return screened

    async def _call(
        self,
        operation: str,
        target: str,
        payload: Any,
        fn: Callable[[gitlab.Gitlab], T],
        *,
        read: bool = False,
        once: bool = False,
        find_existing: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        try:
            result = await self.client.call(operation, fn, once=once, find_existing=find_existing)
        except ForgeError as error:
            verdict = f"error:{error.status or 'unavailable'}"
            metrics.gitlab_call(operation, error.status)
            await self._audit(operation, target, payload, verdict, read=read)
            raise
        metrics.gitlab_call(operation, "ok")
        await self._audit(operation, target, payload, "ok", read=read)
        return result

    async def _audit(
        self, operation: str, target: str, payload: Any, verdict: str, *, read: bool = False
    ) -> None:
        if self.audit is None:
            return
        if read:
            await self.audit.record_read(self.who, f"gitlab.{operation}", target, verdict)
        else:
            await self.audit.append(self.who, f"gitlab.{operation}", target, payload, verdict)
