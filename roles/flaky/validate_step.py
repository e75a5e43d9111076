"""The validator at the merge gate: a flaky test's fix is proven before a human merges it.

The ordinary roles carry the fix to ``workflow::merge-ready`` while the doctor's label says
``flaky::fixing``. The doctor's pass then moves it to ``flaky::fix-ready``, claims it
(``flaky::validating``) and runs the test's job N times on the pipeline of the merge
request's head. N out of N green leaves it at merge-ready with ``flaky::validated``, the
merge still the human's. A red run sends the fix back: ``flaky::fixing`` and, in the
ordinary workflow, merge-ready to dev-ready, with the runs in the validator's note.
"""

from __future__ import annotations

import logging

from forge.gateway import StaleState
from forge.types import Issue
from roles.context import Services
from roles.flaky.filing import Rerun
from roles.flaky.proof import Proofs, RunOnce
from roles.mr_link import issue_mr
from workflow import Outcome, next_state

log = logging.getLogger(__name__)


async def head_rerun(services: Services, issue: Issue, rerun: Rerun) -> Rerun | None:
    """The same job and test on the pipeline of the fix's merge request head."""
    mr = await issue_mr(services.gateway, issue.project, issue.iid)
    pipeline = mr.head_pipeline if mr is not None else None
    if pipeline is None or pipeline.status not in ("success", "failed"):
        return None  # no finished pipeline on the head yet: the next pass looks again
    return Rerun(pipeline.id, rerun.job, rerun.test)


async def validate_fix(
    services: Services,
    proofs: Proofs,
    issue: Issue,
    runs: RunOnce,
    *,
    floor: int,
    ceiling: int,
    resume: str = "",
) -> bool:
    verdict = await proofs.validate(issue, runs, floor=floor, ceiling=ceiling, resume=resume)
    if not verdict.accepted:
        wf = services.workflow
        back = next_state(wf, wf.gate_state("merge").name, Outcome.REJECTED)
        try:
            await services.gateway.transition(
                issue.project, issue.iid, back, expect={wf.gate_state("merge").name}
            )
        except StaleState as moved:
            log.warning("flaky validator %s: not sent back, %s", issue.ref, moved)
    return verdict.accepted
