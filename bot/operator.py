"""Gate decisions by the host's operator on the command line (``crewline approve`` and
``crewline request-changes``).

Whoever can run crewline on a host holds its GitLab token, so the operator is trusted as
the host's and recorded as ``operator:<login>``; the decision goes through the same gate
functions as every other surface (``roles/gates/decide.py``: the current revision only, the keyed
decision note, applied once) and is audited as ``desk.decide.<gate>``. The revision is the
one GitLab shows now (the newest plan, the MR head): the operator decides what is there.
"""

from __future__ import annotations

import getpass

from bot.app import Runtime
from roles.gates.decide import Decision, decide_merge, decide_plan
from roles.gates.recovery import gate_request
from workflow import read_state

VIA = "the command line"


def operator_login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        return "unknown"


async def operator_decide(
    runtime: Runtime, project: str, iid: int, *, approve: bool, feedback: str = "", login: str
) -> Decision:
    """Decide whichever gate ``project#iid`` waits at, as ``operator:<login>``."""
    services = runtime.services
    if project not in services.projects:
        listed = ", ".join(services.projects)
        return Decision(False, f"{project} is not a configured project (configured: {listed})")
    wf = services.workflow
    issue = await services.gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    gates = {wf.gate_state("plan").name: "plan", wf.gate_state("merge").name: "merge"}
    gate = gates.get(state.name) if state is not None else None
    if state is None or gate is None:
        where = state.name if state is not None else "no workflow state"
        return Decision(False, f"{issue.ref} waits at no gate (it is at {where})")
    request = await gate_request(services.gateway, issue, state.name)
    if request is None:
        return Decision(False, f"{issue.ref} has nothing to decide yet (no plan or no open MR)")
    who = f"operator:{login}"
    if gate == "plan":
        decision = await decide_plan(
            services.gateway, services.storage.leases, project, iid, revision=request.revision,
            approve=approve, who=who, via=VIA, worker=services.worker, feedback=feedback,
        )  # fmt: skip
    else:
        decision = await decide_merge(
            services.gateway, services.storage.leases, project, iid, revision=request.revision,
            approve=approve, who=who, via=VIA, worker=services.worker, feedback=feedback,
            merger=services.merger,
        )  # fmt: skip
    payload = {"revision": request.revision, "approve": approve, "feedback": feedback}
    verdict = "ok" if decision.applied else "unchanged"
    await services.storage.audit.append(who, f"desk.decide.{gate}", issue.ref, payload, verdict)
    return decision
