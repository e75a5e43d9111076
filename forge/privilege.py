"""Least privilege: does crewline's own token have more power than it should?

crewline's bot should be a Developer: it cannot merge into or push to a protected target
branch, so nothing lands without a human (or the separate merge identity acting on a
human's approval). A token that could merge by itself is reported loudly at start.
"""

from __future__ import annotations

from typing import Any

import gitlab

from forge.ports import IssueTracker


async def merge_power(gateway: IssueTracker, project: str, target_branch: str) -> str | None:
    """A warning when the token's user may merge into or push to ``target_branch`` of
    ``project`` on its own (unprotected, or protected below the user's level); else None."""

    def facts(gl: gitlab.Gitlab) -> dict[str, Any]:
        gl.auth()
        user = gl.user
        assert user is not None
        handle = gl.projects.get(project, lazy=True)
        member = handle.members_all.get(user.id)
        try:
            rule = dict(handle.protectedbranches.get(target_branch).attributes)
        except gitlab.exceptions.GitlabGetError as error:
            if error.response_code != 404:
                raise
            rule = None
        return {
            "username": user.username,
            "admin": bool(getattr(user, "is_admin", False)),
            "level": int(member.access_level),
            "rule": rule,
        }

    found = await gateway.calls.read("privilege.check", project, {}, facts)
    level, rule, who = found["level"], found["rule"], found["username"]
    if rule is None:
        if level >= 30:
            return (
                f"`{target_branch}` of {project} is not protected: @{who} (crewline's token) "
                "can push to it directly. Protect it and let only Maintainers merge."
            )
        return None
    allowed = [
        int(entry.get("access_level") or 0)
        for key in ("merge_access_levels", "push_access_levels")
        for entry in rule.get(key) or []
    ]
    if found["admin"] or any(0 < needed <= level for needed in allowed):
        return (
            f"@{who} (crewline's token, access level {level}) can merge into the protected "
            f"`{target_branch}` of {project} by itself. Use a Developer token for crewline and "
            "configure CREWLINE_GITLAB_MERGE_TOKEN for merges after a human's approval."
        )
    return None
