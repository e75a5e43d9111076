"""The tests QA excuses as flaky on this host (decision 0011).

QA excuses a test that failed and then passed on a retry of its job (``flaky_key``), so a
flake never sends good work back to the developer. The detector (``roles.flaky.detector``)
makes each excused test a candidate for the doctor's own issue, and takes it off the record
once that issue was closed at ``flaky::validated``: QA stops excusing it, a failure fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage import SettingsStore


def flaky_key(project: str) -> str:
    """Where a project's excused test names live: QA retries these instead of sending back."""
    return f"flaky:{project}"


async def record_flakes(kv: SettingsStore, project: str, names: Sequence[str]) -> None:
    """QA saw ``names`` fail then pass on a retry: excuse them from now on."""
    await kv.update_json(flaky_key(project), lambda known: sorted({*known, *names}), [])


async def forget_flake(kv: SettingsStore, project: str, name: str) -> None:
    """``name`` is fixed: QA stops excusing it."""
    await kv.update_json(flaky_key(project), lambda known: [n for n in known if n != name], [])
