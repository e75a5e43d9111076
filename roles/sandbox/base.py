"""The interface every sandbox backend implements: given a command and what it may see,
the argv and environment that run it confined.

crewline runs two kinds of untrusted programs: coding agents and validation commands (both
execute code an agent wrote). Each launch goes through a :class:`Sandbox`; crewline's own git
commands (fetch, commit, push with the token) do not. A backend decides how the confinement
is done (bubblewrap today; a container runtime could follow) but not what is visible: that is
the launch's ``cwd``, ``writable`` and ``readable`` plus what the backend was built to hide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class SandboxError(Exception):
    """The configured sandbox cannot run here; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Launch:
    """What to hand to ``create_subprocess_exec``: the (wrapped) argv and its environment."""

    argv: list[str]
    env: dict[str, str]


class Sandbox(Protocol):
    """Turns a command into one that runs confined."""

    name: str  # "bwrap", "none"...: for logs, transcripts and `crewline doctor`

    def wrap(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        writable: Sequence[Path] = (),
        readable: Sequence[Path] = (),
    ) -> Launch:
        """``argv`` run in ``cwd`` (read-write) with exactly ``env``; ``writable`` and
        ``readable`` are further paths this launch needs (a transcript directory, say)."""
        ...
