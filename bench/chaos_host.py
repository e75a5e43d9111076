"""One crewline host of the chaos harness: a ``crewline worker`` subprocess started, watched,
killed with SIGKILL or stopped with SIGTERM, its output kept in a log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

STOP_WITHIN = 60.0  # seconds for a host to stop cleanly on SIGTERM


class Host:
    """One worker id: its current process, restarted after every kill.

    A kill counts only when it really happened: the process had come up (said ``up``) and
    died of the SIGKILL sent. Under load a Python process takes seconds to start, and killing
    it during its imports tests nothing, so such picks are skipped (``skipped``). A process
    that ends by itself is restarted too, and recorded as a crash unless it was a gate kill."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.proc: asyncio.subprocess.Process | None = None
        self.lives = 0
        self.gate_kills = 0
        self.skipped = 0
        self.crashes: list[str] = []
        self.up = False
        self._gate_killed = False  # this life announced a gate kill
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.lives += 1
        self.up = self._gate_killed = False
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=subprocess.PIPE, stderr=stderr, env=self.env
            )
        self._reader = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            current = proc is self.proc  # a killed life's last lines say nothing of the next
            if raw.startswith(b"gate-kill"):
                self.gate_kills += 1
                self._gate_killed = self._gate_killed or current
            elif raw.strip() == b"up" and current:
                self.up = True

    def _exited(self) -> bool:
        """The process is gone, or a zombie that asyncio has not reaped yet."""
        if self.proc is None or self.proc.returncode is not None:
            return True
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return False  # no /proc: trust returncode
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    async def ensure_running(self) -> None:
        """Restart a process that died by itself; a death other than a gate kill is a crash."""
        if self.proc is None or not self._exited():
            return
        code = await self.proc.wait()
        if self._reader is not None:
            await self._reader  # its last lines (a gate kill) are read before judging
        if not (self._gate_killed and code == -signal.SIGKILL):
            self.crashes.append(f"{self.name} life {self.lives} ended by itself with {code}")
        await self.start()

    async def kill(self) -> bool:
        """SIGKILL a process that is up; True when it died of it."""
        if self.proc is None or self._exited():
            return False
        if not self.up:
            self.skipped += 1
            return False
        self.proc.send_signal(signal.SIGKILL)
        return await self.proc.wait() == -signal.SIGKILL

    async def kill_now(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_WITHIN)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
