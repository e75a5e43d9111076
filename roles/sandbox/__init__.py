"""Sandboxes for the programs crewline runs on an agent's behalf (agents, validation
commands): one interface (``base``), a backend per module, ``select_sandbox`` at start.

See docs/decisions/0019-agent-sandbox.md for what is hidden and why.
"""

from __future__ import annotations

from roles.sandbox.base import Launch, Sandbox, SandboxError
from roles.sandbox.bwrap import BwrapSandbox, probe
from roles.sandbox.none import NoSandbox
from roles.sandbox.select import UNCONFINED_WARNING, Selected, select_sandbox
from roles.sandbox.settings import SandboxSettings

__all__ = [
    "UNCONFINED_WARNING",
    "BwrapSandbox",
    "Launch",
    "NoSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxSettings",
    "Selected",
    "probe",
    "select_sandbox",
]
