"""Choosing the sandbox backend at start: what the settings ask for, and whether bubblewrap
actually works on this machine (probed once by running a confined ``true``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from roles.sandbox.base import Sandbox, SandboxError
from roles.sandbox.bwrap import BwrapSandbox, probe, python_dirs
from roles.sandbox.none import NoSandbox
from roles.sandbox.settings import SandboxSettings

UNCONFINED_WARNING = (
    "agents and validation commands run WITHOUT a sandbox: code an agent writes can read "
    "crewline's database, the other issues' worktrees and whatever this user can read"
)


@dataclass(frozen=True, slots=True)
class Selected:
    sandbox: Sandbox
    warning: str | None = None  # set when crewline fell back to no confinement


def select_sandbox(
    settings: SandboxSettings,
    *,
    hidden: Iterable[Path] = (),
    check: Callable[[], str | None] = probe,
) -> Selected:
    """The backend to use; SandboxError when ``bwrap`` was asked for and does not work."""
    if settings.backend == "none":
        return Selected(NoSandbox(), f'sandbox = "none" is configured: {UNCONFINED_WARNING}')
    problem = check()
    if problem is not None:
        if settings.backend == "bwrap":
            raise SandboxError(f'sandbox = "bwrap" is configured but {problem}')
        return Selected(
            NoSandbox(),
            f"{UNCONFINED_WARNING}. bubblewrap does not work here: {problem}; fix that, or "
            'set sandbox = "none" to accept it',
        )
    sandbox = BwrapSandbox(
        hidden=hidden,
        readable=[*python_dirs(), *settings.read_only],
        writable=settings.writable,
    )
    return Selected(sandbox)
