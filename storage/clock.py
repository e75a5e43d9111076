"""Timestamps as stored: fixed-width ISO-8601 UTC text, so SQL compares them as text correctly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``; stores take one so tests can control time."""


def iso_utc(seconds: float) -> str:
    """``1700000000.5`` -> ``'2023-11-14T22:13:20.500000+00:00'`` (always the same width)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def iso_of(moment: datetime) -> str:
    """The stored form of an aware datetime; a naive one is refused (its zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"datetime {moment.isoformat()} has no time zone; pass an aware datetime such as "
            "datetime.now(UTC)"
        )
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)
