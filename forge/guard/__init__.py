"""The guard: every write crewline makes to GitLab is screened here first (SPEC §6).

Blocks known secret formats, high-entropy secret assignments, crewline's own tokens,
prompt-injection markers and invisible Unicode; neutralises GitLab quick actions in
the prose crewline posts. Pure: the gateway audits the verdict and refuses the write.
"""

from forge.guard import guard as _guard
from forge.guard.findings import Finding, GuardBlocked
from forge.guard.guard import Guard
from forge.guard.quick_actions import QUICK_ACTIONS, neutralise_quick_actions

__all__ = [
    "QUICK_ACTIONS",
    "Finding",
    "Guard",
    "GuardBlocked",
    "compiled",
    "neutralise_quick_actions",
]


def compiled() -> bool:
    """Whether the guard runs as mypyc-compiled modules (a wheel built with
    ``CREWLINE_COMPILE=1``, decision 0047) rather than from its Python sources."""
    return not str(_guard.__file__).endswith(".py")
