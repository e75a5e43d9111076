"""The doctor's steps under the same claims and janitor as the other roles (SPEC §3, §4).

Its claims live on a gateway view whose workflow is the doctor's (``flaky::``), so a claim,
its expiry and its re-queue are the ones every role uses (forge/claims.py). A step that
raises is put back by the step itself (:func:`stopped`); a step whose host died is put back
by the janitor of any host once its claim expired (:func:`sweep_flaky`): the issue goes back
to the step's ready state with "attempt k of n", or to ``flaky::failed`` once the step's
``roles.flaky.max_attempts`` are spent, so no issue stays at ``flaky::reproducing``,
``diagnosing`` or ``validating`` for ever. Attempts count per round, from the claim notes
(roles/attempts.py).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from forge.calls import fenced
from forge.claims import Claim, requeue_key
from forge.gateway import StaleState
from roles.attempts import round_attempt
from roles.context import Services
from roles.ports import IssueSnapshot, IssueTracker
from storage import Lease
from workflow import Outcome, Workflow, flaky_workflow, next_state
from workflow.flaky import FLAKY_ROLES

log = logging.getLogger(__name__)


@dataclass
class FlakySweep:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def flaky_gateway(gateway: IssueTracker, flaky: Workflow) -> IssueTracker:
    """The same gateway (calls, audit, trust) moving issues through the doctor's workflow."""
    view = copy.copy(gateway)
    view.workflow = flaky
    return view


def after_stop(flaky: Workflow, role: str, attempt: int, limit: int, why: str) -> tuple[str, str]:
    """Where a step that stopped on attempt ``attempt`` goes, and the note saying so."""
    running = flaky.running_state(role).name
    if attempt >= limit:
        target = next_state(flaky, running, Outcome.EXHAUSTED)
        return target, f"The {role} step stopped on attempt {attempt} of {limit} ({why}): failed."
    target = next_state(flaky, running, Outcome.EXPIRED)
    return target, (
        f"The {role} step stopped on attempt {attempt} of {limit} ({why}); re-queued "
        f"(attempt {attempt + 1} of {limit} next)."
    )


async def stopped(gateway: IssueTracker, limit: int, claim: Claim[Lease], why: str) -> str | None:
    """A step that raised: its issue back to the ready state, or failed when its attempts
    are spent, with a note keyed by the round (one per stop). The state it went to."""
    flaky = gateway.workflow
    attempt = round_attempt(await gateway.notes(claim.project, claim.iid), claim.role)
    target, reason = after_stop(flaky, claim.role, attempt, limit, why)
    running = flaky.running_state(claim.role).name
    try:
        await gateway.transition(claim.project, claim.iid, target, expect={running})
    except StaleState as moved:
        log.warning("flaky step not re-queued: issue=%s#%s: %s", claim.project, claim.iid, moved)
        return None
    with fenced(None):  # the move above was the round's last fenced write; it opened a new one
        key = requeue_key(claim.role, claim.round)
        await gateway.upsert_note(claim.project, claim.iid, key, reason)
    log.info("flaky step stopped: issue=%s#%s role=%s -> %s",
             claim.project, claim.iid, claim.role, target)  # fmt: skip
    return target


async def sweep_flaky(
    services: Services, listing: IssueSnapshot, *, busy: Collection[tuple[str, int]] = ()
) -> FlakySweep:
    """Put back every doctor's step of the project ``listing`` shows whose claim expired (its
    host died or hung); judged on fresh reads and fenced by ``Claims.expire``, as the janitor
    does for the roles, whatever the listing said."""
    swept = FlakySweep()
    settings = services.roles.flaky
    if not settings.enabled:
        return swept
    flaky = flaky_workflow()
    claims = services.claims.over(flaky_gateway(services.gateway, flaky))
    for role in FLAKY_ROLES:
        for issue in listing.at(flaky.running_state(role).label):
            if settings.label not in issue.labels or (issue.project, issue.iid) in busy:
                continue
            attempt = round_attempt(await services.notes_of(issue), role)
            target, reason = after_stop(
                flaky, role, attempt, settings.max_attempts, "its claim expired"
            )
            if await claims.expire(issue, role, reason=reason, target=target):
                spent = target == flaky.state("failed").name
                (swept.failed if spent else swept.requeued).append(issue.ref)
    return swept
