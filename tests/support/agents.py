"""Fake agent executables for the adapter tests.

A fake is a small Python script (shebang: this interpreter) that first records its argv, stdin,
working directory and environment (as the kernel handed it over, from /proc/self/environ) to
``<name>.record.json`` beside itself, then runs the body the test gave it: usually printing
what the real CLI documents.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roles.agents.base import AgentTask, TaskKind

_HEADER = """\
#!{python}
import json, os, signal, subprocess, sys, time
from pathlib import Path

RECORD = Path({record!r})
_stdin = sys.stdin.read()
_environ = open("/proc/self/environ", "rb").read().decode()
RECORD.write_text(json.dumps({{
    "argv": sys.argv[1:],
    "stdin": _stdin,
    "cwd": os.getcwd(),
    "env": dict(item.split("=", 1) for item in _environ.split("\\0") if item),
}}))
"""


@dataclass(frozen=True)
class Fake:
    path: Path
    record_path: Path

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.record_path.read_text())
        return data


def write_fake(directory: Path, name: str, body: str) -> Fake:
    """An executable ``directory/name`` that records its call, then runs ``body``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    record = directory / f"{name}.record.json"
    header = _HEADER.format(python=sys.executable, record=str(record))
    path.write_text(header + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return Fake(path, record)


def printing(stdout: str = "", stderr: str = "", exit_code: int = 0) -> str:
    """A fake body printing exactly ``stdout`` and ``stderr``, then exiting with ``exit_code``."""
    return (
        f"sys.stdout.write({stdout!r})\nsys.stderr.write({stderr!r})\n"
        f"sys.stdout.flush()\nsys.exit({exit_code})\n"
    )


def jsonl(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def make_task(
    tmp_path: Path,
    prompt: str = "Implement issue #3: add a slugify helper.",
    *,
    kind: TaskKind = TaskKind.IMPLEMENT,
    session_id: str | None = None,
    timeout_seconds: float = 30.0,
) -> AgentTask:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return AgentTask(
        kind=kind,
        prompt=prompt,
        workspace=workspace,
        transcript_dir=tmp_path / "transcripts",
        session_id=session_id,
        timeout_seconds=timeout_seconds,
        label="demo/app#3 dev attempt 1",
    )


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def gone(pid: int, within: float = 3.0) -> bool:
    """Wait up to ``within`` seconds for ``pid`` to be gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while alive(pid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_for_file(path: Path, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(path.exists):
        if loop.time() > deadline:
            raise TimeoutError(f"{path} did not appear within {within} s")
        await asyncio.sleep(0.02)


def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> Fake:
    """A fake ``name`` CLI found on PATH, as the real one would be."""
    fake = write_fake(tmp_path / "bin", name, body)
    monkeypatch.setenv("PATH", f"{fake.path.parent}{os.pathsep}{os.environ['PATH']}")
    return fake
