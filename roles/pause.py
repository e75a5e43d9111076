"""Pause and resume claiming for the whole fleet, on the projects' control issues.

One function serves every surface (the Discord desk, ``crewline pause|resume``): each
caller checks who may do it and audits it; this writes the flag and words the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roles.fleet_state import PAUSE_ALL, PAUSE_PROJECT, FleetState


@dataclass(frozen=True)
class PauseChange:
    changed: bool  # False: it already was so (nothing written)
    message: str


async def set_paused(
    fleet: FleetState,
    projects: Sequence[str],
    project: str | None,
    *,
    paused: bool,
    who: str,
    resume_all: str = "/resume",
) -> PauseChange:
    """Pause (or resume) ``project``, or every project of ``projects`` when it is None.
    ``resume_all`` names how this surface resumes every project, for the answer."""
    scope_name = project or "every project"
    scope = PAUSE_PROJECT if project else PAUSE_ALL
    changed = False
    for path in [project] if project else projects:
        changed = await fleet.set_pause(path, scope, paused, who) or changed
    if not changed:
        return PauseChange(False, f"{scope_name} is already {'paused' if paused else 'not paused'}")
    still = ""
    if not paused and project and fleet.paused_everywhere(project):
        still = f" (every project is still paused: {resume_all} without a project lifts that)"
    verb = "paused: no host claims new work" if paused else "resumed"
    return PauseChange(True, f"{scope_name} {verb}{still}")
