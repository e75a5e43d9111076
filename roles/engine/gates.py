"""Gates the engine asks about again: decided in GitLab meanwhile (a 👍, a reply, an
Approve), or never taken by a desk of this process (docs/decisions/0014, 0023). Part of the
engine."""

from __future__ import annotations

import logging
from typing import Any

from forge.client import ForgeError
from roles.context import Services
from roles.gates.decide import GateNotDecided
from roles.gates.gitlab import GitLabGates
from roles.gates.recovery import gate_request, issues_at_gates

log = logging.getLogger("roles.engine")

# A listing at most this old serves the gates: the engine's pass just made it (a move this
# host makes updates it at once).
LISTING_REUSE = 5.0


class AskingGates:
    """The engine's second asking at gates (a base of :class:`roles.engine.loop.Engine`)."""

    services: Services
    gitlab_gates: GitLabGates
    _inflight: dict[tuple[str, int], Any]
    _gates_asked: set[tuple[str, int]]

    async def reask_gates(self) -> int:
        """Decide the gates GitLab has decided (a 👍, a reply, an Approve: see
        ``roles/gates/gitlab.py``), then ask the desk about issues waiting at a gate that no
        desk of this process took: its request failed (a decision it could not apply), or a
        crash or restart came before it. How many requests the desk took."""
        asked = 0
        gateway = self.services.gateway
        for project in self.services.projects:
            # The pass before this one just listed: the same listing serves the gates.
            waiting = await issues_at_gates(gateway, project, max_age=LISTING_REUSE)
            here = {(project, issue.iid) for issue, _ in waiting}
            # An issue that left its gate is asked again whenever it comes back.
            self._gates_asked = {k for k in self._gates_asked if k[0] != project or k in here}
            for issue, gate in waiting:
                key = (project, issue.iid)
                if key in self._inflight:
                    continue
                try:
                    decided = await self.gitlab_gates.look(issue, gate)
                except ForgeError as error:
                    log.warning("reading a gate in GitLab failed: issue=%s: %s", issue.ref, error)
                    decided = None
                if decided is not None:
                    continue  # the move reached the engine through the gateway (_moved)
                if key in self._gates_asked:
                    continue
                # The notes as last read (again only once the issue changed).
                notes = await self.services.notes_of(issue)
                request = await gate_request(gateway, issue, gate, notes)
                if request is None:
                    continue
                try:
                    await self.services.desk.request(request)
                except GateNotDecided as undecided:
                    log.warning("gate still undecided, asking again later: %s", undecided)
                    continue
                except Exception:
                    log.exception("desk failed, asking again later: issue=%s", issue.ref)
                    continue
                self._gates_asked.add(key)
                asked += 1
        return asked
