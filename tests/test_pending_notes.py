"""A keyed note's copy check survives the death of the host that posted it (SPEC §10).

Two hosts that decide one gate at once both post the decision note; each then reads the
notes back and deletes its copy if a lower one exists. A host killed between its post and
that read used to leave its copy for good (a chaos run's "decision:merge:<sha> x2"): the
check is now owed in the host's database before the post and finished on restart or by the
next janitor pass."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from forge.client import ForgeError
from forge.pending_notes import PREFIX
from roles.engine.janitor import sweep
from sim.core.app import RunningSim
from tests.support.engine import PROJECT, configure, file_goal, note_bodies, runtime_for

KEY = "decision:merge:0123456789ab"
KILL_WORKER = Path(__file__).parent / "note_kill_worker.py"


def copies(sim: RunningSim, iid: int) -> list[str]:
    return [body for body in note_bodies(sim, iid) if f"key={KEY} " in body]


async def test_a_host_killed_between_its_post_and_its_copy_check_removes_its_copy_on_restart(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """A real SIGKILL: host B read the notes before host A posted the key, posts its own copy
    and dies before reading back. Restarted (same id, same database), it removes its copy."""
    host_b = configure(demo_sim, tmp_path / "b", worker_id="host-b")
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path / "a")) as (host_a, _):
        issue = await file_goal(host_a, "Decide once", "One decision note.")
        kept = await host_a.services.gateway.upsert_note(PROJECT, issue.iid, KEY, "Decided (A).")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(KILL_WORKER), "--url", demo_sim.base_url,
        "--base", str(tmp_path / "b"), "--worker", "host-b", "--iid", str(issue.iid),
        "--key", KEY, "--stale-before", str(kept.id),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "CREWLINE_GITLAB_TOKEN": demo_sim.config.bot_token},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL and out.decode().split() == ["up"]
    assert len(copies(demo_sim, issue.iid)) == 2  # the kill left B's copy behind

    async with runtime_for(demo_sim, host_b) as (restarted, _):
        assert len(await restarted.storage.settings.keys(PREFIX)) == 1  # owed, durably
        await restarted.engine.resume()
        assert await restarted.storage.settings.keys(PREFIX) == []
    [left] = copies(demo_sim, issue.iid)
    assert left.startswith("Decided (A).")


async def test_a_copy_check_whose_read_failed_is_finished_by_the_next_janitor_pass(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: Any
) -> None:
    async with runtime_for(demo_sim, configure(demo_sim, tmp_path)) as (runtime, _):
        gateway = runtime.services.gateway
        issue = await file_goal(runtime, "Decide once", "One decision note.")
        stale = await gateway.notes(PROJECT, issue.iid)
        await gateway.upsert_note(PROJECT, issue.iid, KEY, "Decided (another host).")
        assert await runtime.storage.settings.keys(PREFIX) == []  # a clean upsert owes nothing

        read = gateway.notes

        async def gitlab_away(*_: Any, **__: Any) -> Any:
            raise ForgeError("note.list", "502 Bad Gateway", 502)

        post = gateway.post_note

        async def posted_then_away(*args: Any, **kwargs: Any) -> Any:
            note = await post(*args, **kwargs)
            monkeypatch.setattr(gateway, "notes", gitlab_away)
            return note

        monkeypatch.setattr(gateway, "post_note", posted_then_away)
        try:
            await gateway.upsert_note(PROJECT, issue.iid, KEY, "Decided (this host).", known=stale)
        except ForgeError:
            pass
        else:
            raise AssertionError("the read after the post was meant to fail")
        monkeypatch.setattr(gateway, "notes", read)
        assert len(copies(demo_sim, issue.iid)) == 2

        report = await sweep(runtime.services)
        assert report.copies_checked == [f"{PROJECT}#{issue.iid} {KEY}"]
        assert await runtime.storage.settings.keys(PREFIX) == []
        [left] = copies(demo_sim, issue.iid)
        assert left.startswith("Decided (another host).")
        assert (await sweep(runtime.services)).copies_checked == []  # done once
