"""``crewline pause`` and ``crewline resume``: the fleet's switch, from a host's command line.

The flag is written on the projects' control issues (roles/pause.py), so every host stops
claiming at its next poll; the operator is recorded as ``operator:<login>`` in this host's
audit trail, as for ``crewline approve``.
"""

from __future__ import annotations

import asyncio
import sys

from bot.app import Runtime, build_runtime
from bot.config import CrewlineConfig, Secrets
from bot.operator import operator_login
from forge.client import ForgeError
from roles.engine.loop import PAUSE_ALL, pause_key
from roles.notify import EventLog
from roles.pause import PauseChange, set_paused


async def operator_pause(runtime: Runtime, project: str | None, *, paused: bool) -> PauseChange:
    services = runtime.services
    if project is not None and project not in services.projects:
        listed = ", ".join(services.projects)
        raise ValueError(f"{project} is not a configured project (configured: {listed})")
    who = f"operator:{operator_login()}"
    change = await set_paused(
        services.fleet, list(services.projects), project, paused=paused,
        who=f"{who} on {services.worker}", resume_all="`crewline resume`",
    )  # fmt: skip
    target = pause_key(project) if project else PAUSE_ALL
    what = "desk.pause" if paused else "desk.resume"
    await services.storage.audit.append(
        who, what, target, {"via": "the command line"}, "ok" if change.changed else "unchanged"
    )
    return change


def run_pause(
    config: CrewlineConfig, secrets: Secrets, project: str | None, *, paused: bool
) -> int:
    """The command: 0 when done (or already so), 1 when GitLab failed, 2 for a bad project."""

    async def switch() -> tuple[int, str]:
        runtime = await build_runtime(config, secrets, notifier=EventLog())
        try:
            change = await operator_pause(runtime, project, paused=paused)
        except ValueError as error:
            return 2, str(error)
        except ForgeError as error:
            return 1, f"GitLab refused or did not answer: {error}"
        finally:
            await runtime.close()
        return 0, change.message

    code, message = asyncio.run(switch())
    print(message, file=sys.stderr if code else sys.stdout)
    return code
