"""What the guard reports: findings, and the exception that refuses a write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

QUICK_ACTION_PREFIX: Final = "quick_action."


@dataclass(frozen=True)
class Finding:
    """One thing the guard found.

    ``start``/``end`` are offsets into the screened string. ``redacted`` is safe to log
    and show: a secret appears only as its first few characters and its length.
    """

    rule: str
    where: str
    start: int
    end: int
    redacted: str

    @property
    def blocking(self) -> bool:
        """Quick actions are neutralised in place; everything else refuses the write."""
        return not self.rule.startswith(QUICK_ACTION_PREFIX)


class GuardBlocked(Exception):
    """A write was refused. Neither ``str(error)`` nor any attribute holds a secret."""

    def __init__(
        self,
        rule: str,
        where: str,
        reason: str,
        redacted: str,
        findings: Sequence[Finding] = (),
    ) -> None:
        self.rule = rule
        self.where = where
        self.reason = reason
        self.redacted = redacted
        self.findings: tuple[Finding, ...] = tuple(findings)
        super().__init__(self._message())

    def _message(self) -> str:
        more = len(self.findings) - 1
        extra = f" (+{more} more finding{'s' if more > 1 else ''})" if more > 0 else ""
        return f"{self.where}: write blocked by {self.rule}: {self.reason} [{self.redacted}]{extra}"


def redact_secret(secret: str) -> str:
    """A recognisable but useless excerpt: a short prefix and the length.

    Short secrets show fewer characters so the excerpt never gives away a real share of them.
    """
    shown = min(4, len(secret) // 6)
    return f"{secret[:shown]}…({len(secret)} chars)"


def printable_excerpt(text: str, limit: int = 60) -> str:
    """A one-line excerpt of non-secret text (an injection phrase), safe for logs."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
