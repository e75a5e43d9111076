"""Screening a large write must not stall the event loop.

Measured on the shared machine (1 MB of prose and code through ``AuditedCalls.write``):
screened on the loop, a 1 ms heartbeat stalled for the whole screening (about 0.2 s);
in the worker thread, for 0.03-0.12 s (a single long C call, ``str.lower`` or a regex
scan of the whole text, keeps the GIL). Timings are too noisy here to assert; the tests
assert where the work runs.

The guard is CPU work in proportion to the text. Under ``SCREEN_IN_THREAD_CHARS`` it runs
inline (a thread hop would cost more); above it, in a worker thread, so other runs,
Discord and claim renewals keep being served while a commit's files or a long CI excerpt
are screened.
"""

from __future__ import annotations

import threading
from pathlib import Path

from forge import calls
from forge.guard import Guard
from sim.core.app import RunningSim
from tests.support.forge import BOT_TOKEN, PROJECT, gateway_for, make_project


async def test_small_work_runs_inline_and_large_work_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    small = await calls.off_loop_if_large(10, threading.get_ident)
    large = await calls.off_loop_if_large(calls.SCREEN_IN_THREAD_CHARS + 1, threading.get_ident)
    assert small == loop_thread
    assert large != loop_thread


def test_the_size_counts_every_nested_text() -> None:
    payload = {"body": "abc", "actions": [{"content": b"12345", "n": 3}], "flag": True}
    assert calls.screened_size(payload) == 8


class _RecordingGuard(Guard):
    """The real guard, noting which thread screened each text."""

    def __init__(self) -> None:
        super().__init__([BOT_TOKEN])
        self.threads: list[int] = []

    def screen_text(self, text: str, *, where: str) -> str:
        self.threads.append(threading.get_ident())
        return super().screen_text(text, where=where)


async def test_a_large_note_is_screened_off_the_event_loop_a_small_one_on_it(
    sim: RunningSim, tmp_path: Path
) -> None:
    """Through the real write path (guard, audit, GitLab client, simulator)."""
    make_project(sim)
    large = "The retry loop waits base_delay * 2**attempt; see #42.\n" * 1_000
    assert len(large) > calls.SCREEN_IN_THREAD_CHARS
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        guard = _RecordingGuard()
        gateway.calls.guard = guard
        issue = await gateway.create_issue(PROJECT, "Notes", "", [])
        await gateway.post_note(PROJECT, issue.iid, "A short note.")
        await gateway.post_note(PROJECT, issue.iid, large)
    loop_thread = threading.get_ident()
    assert guard.threads[-2] == loop_thread
    assert guard.threads[-1] != loop_thread
