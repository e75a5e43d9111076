"""Every GitLab call goes through here: screened by the guard when it writes, and
written to the audit trail whatever its outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import gitlab

from forge.client import ForgeError, GitLabClient
from forge.guard import Guard, GuardBlocked

log = logging.getLogger(__name__)

T = TypeVar("T")


class AuditSink(Protocol):
    """What the gateway needs of the audit trail (``storage.AuditLog`` satisfies it)."""

    async def append(
        self, who: str, what: str, target: str, payload: Any, verdict: str = "ok"
    ) -> Any: ...


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
        return await self._call(operation, target, dict(params), fn)

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
    ) -> T:
        """Screen ``payload`` (all or nothing), then send the screened payload with ``fn``.

        Text fields have GitLab quick actions neutralised; branch names and file contents
        are checked but never rewritten. ``redact_fields`` hold text crewline composed from
        material it quotes (CI logs, test output, goal text): findings there are replaced
        by ``[redacted: <rule>]`` instead of refusing the write.
        """
        payload = self._redacted(operation, target, payload, redact_fields)
        try:
            screened = self.screen(operation, payload, text_fields, branch_fields, content_fields)
        except GuardBlocked as blocked:
            await self._audit(operation, target, payload, f"blocked:{blocked.rule}")
            log.warning("guard blocked %s on %s: %s", operation, target, blocked.rule)
            raise
        return await self._call(operation, target, screened, lambda gl: fn(gl, screened))

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
        self, operation: str, target: str, payload: Any, fn: Callable[[gitlab.Gitlab], T]
    ) -> T:
        try:
            result = await self.client.call(operation, fn)
        except ForgeError as error:
            await self._audit(operation, target, payload, f"error:{error.status or 'unavailable'}")
            raise
        await self._audit(operation, target, payload, "ok")
        return result

    async def _audit(self, operation: str, target: str, payload: Any, verdict: str) -> None:
        if self.audit is not None:
            await self.audit.append(self.who, f"gitlab.{operation}", target, payload, verdict)
