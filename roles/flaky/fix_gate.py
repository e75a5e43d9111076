"""The developer's last check on a flaky-test fix, before the merge request goes to review.

An issue labelled ``roles.flaky.label`` is a flaky test's fix (the doctor's issue, or a goal
filed for an excused test). Its diff must remove the cause: :func:`check_fix` refuses a retry,
a skip, a quarantine, a loosened assertion, or a raised timeout unless the diagnosis (the
``flaky-test::<class>`` label) named resources or timeouts. A refused fix stops at
``blocked`` with the offending lines quoted; no merge request is opened for review.
"""

from __future__ import annotations

from roles.context import RunContext
from roles.engine.loop import RoleResult
from roles.flaky.diagnosis import LABEL_SCOPE
from roles.flaky.diff_check import check_fix
from roles.workspace.worktree import Worktree
from workflow import Outcome

DIFF_LIMIT = 1_000_000  # characters: a refusal hiding past a truncated diff would pass


async def refuse_symptom_fix(ctx: RunContext, wt: Worktree) -> RoleResult | None:
    if ctx.services.roles.flaky.label not in ctx.issue.labels:
        return None
    prefix = f"{LABEL_SCOPE}::"
    cause = next((lb.removeprefix(prefix) for lb in ctx.issue.labels if lb.startswith(prefix)), "")
    found = check_fix(await ctx.services.workspaces.diff(wt, limit=DIFF_LIMIT), cause=cause)
    if not found:
        return None
    lines = "\n".join(f"- {violation.text()}" for violation in found)
    return RoleResult(
        Outcome.BLOCKED,
        "This fixes a flaky test by treating the symptom, not the cause, so it does not go "
        f"to review:\n{lines}\nRemove the cause instead (see the diagnosis), or a human "
        "overrules this by moving the issue on.",
    )
