"""Who may decide a gate: the rules every surface applies (Discord, console, GitLab, CLI).

A decider is a person, not crewline: crewline's own users never decide. A GitLab user
decides with at least the project's ``min_approver_access``; whoever filed a goal does not
approve its merge when the project has ``require_second_person``. Stale revisions are the
gate functions' own rule (``roles/gates/decide.py``): a decision names the plan note or the head
sha it is about.
"""

from __future__ import annotations

from forge.access import access_name
from roles.ports import IssueTracker


async def access_refusal(
    gateway: IssueTracker, project: str, username: str, needed: int
) -> str | None:
    """Why ``username`` may not decide on ``project`` (None: they may)."""
    if username in (await gateway.trust.own()).usernames:
        return f"@{username} is one of crewline's own users; a person decides a gate"
    level = await gateway.access.level(project, username) if username else 0
    if level < needed:
        return (
            f"@{username} has {access_name(level)} access to {project}; deciding a gate needs "
            f"{access_name(needed)} or more (min_approver_access)"
        )
    return None


def second_person_refusal(filer: str, approver: str | None, required: bool) -> str | None:
    """Why ``approver`` may not approve the merge of a goal ``filer`` filed (None: they may)."""
    if required and approver is not None and approver == filer:
        return f"@{approver} filed this goal and cannot approve its merge"
    return None
