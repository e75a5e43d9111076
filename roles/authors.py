"""Whose words count: who may start work, and whose comments reach an agent.

An issue is a goal only when its author, or whoever last put it at the entry state (from
the label events), has at least the project's ``min_filer_access``; crewline's own users
count (a surface filed the goal for an authorised person, or crewline moved it back). An
issue that does not qualify is left alone, not claimed, with one note saying how to start
it. Comments by users below Reporter reach no agent unless the project opts in with
``agents_hear_guests`` (decision record 0017).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from forge.access import OWNER, REPORTER, access_name
from forge.mr_types import Discussion
from forge.settings import ProjectSettings
from forge.types import Issue, Note
from roles.context import IssueMemo, Services

log = logging.getLogger(__name__)

FILER_ACCESS_KEY = "filer-access"


async def access_of(services: Services, project: str, username: str) -> int:
    """``username``'s access level on ``project``; crewline's own users count as Owner."""
    if username in (await services.gateway.trust.own()).usernames:
        return OWNER
    if not username:
        return 0
    return await services.gateway.access.level(project, username)


async def heard(services: Services, project: ProjectSettings, username: str) -> bool:
    """Whether ``username``'s comments on ``project`` are fed to agents."""
    return project.agents_hear_guests or await access_of(services, project.path, username) >= (
        REPORTER
    )


async def heard_authors(
    services: Services, project: ProjectSettings, notes: Iterable[Note]
) -> set[str]:
    """The authors among ``notes`` whose words may reach an agent."""
    authors = {note.author for note in notes}
    return {author for author in authors if await heard(services, project, author)}


async def heard_discussions(
    services: Services, project: ProjectSettings, discussions: list[Discussion]
) -> list[Discussion]:
    """Merge request discussions without the notes of authors agents do not hear; a
    discussion such an author opened is left out whole (crewline does not act on it)."""
    kept = []
    for discussion in discussions:
        notes = [note for note in discussion.notes if await heard(services, project, note.author)]
        if notes and notes[0] is discussion.first:
            kept.append(replace(discussion, notes=tuple(notes)))
    return kept


class FilerCheck:
    """Decides whether a ready issue at the entry state is a goal. The answer holds until
    the issue changes (re-applying the label changes it), so passes do not ask again."""

    def __init__(self) -> None:
        self._memo: IssueMemo[str | None] = IssueMemo()
        self._told: IssueMemo[None] = IssueMemo()

    async def refusal(self, services: Services, issue: Issue) -> str | None:
        """None when ``issue`` may start; else why not. Asking writes nothing (`crewline
        status` asks too): :meth:`tell` says it on the issue."""
        return await self._memo.get(issue, "filer", lambda: _refusal(services, issue))

    async def tell(self, services: Services, issue: Issue, reason: str) -> None:
        """Say ``reason`` on the issue (a keyed note: one copy across hosts and restarts),
        asked again only once the issue changes."""
        await self._told.get(issue, "told", lambda: _tell(services, issue, reason))


async def _refusal(services: Services, issue: Issue) -> str | None:
    wf = services.workflow
    entry = wf.state(wf.entry).label
    needed = services.projects[issue.project].min_filer_access
    author = await access_of(services, issue.project, issue.author)
    # An issue crewline filed (the control issue, a flaky-test issue, a goal filed through
    # a surface) is a goal only when crewline or an authorised person put it at the entry:
    # its authorship alone must not let a Reporter's label start work on it.
    by_crewline = issue.author in (await services.gateway.trust.own()).usernames
    if author >= needed and not by_crewline:
        return None
    events = await services.gateway.label_events(issue.project, issue.iid)
    mover = next((e.user for e in reversed(events) if e.action == "add" and e.label == entry), "")
    moved = await access_of(services, issue.project, mover) if mover else 0
    if moved >= needed or (by_crewline and not mover):
        return None  # crewline's, with no label event saying who put it there: as before
    who = f"@{issue.author} (who filed it) has {access_name(author)} access"
    if by_crewline:
        who = (
            f"crewline filed it, and @{mover} (who added `{entry}`) has {access_name(moved)} access"
        )
    elif mover and mover != issue.author:
        who += f" and @{mover} (who added `{entry}`) has {access_name(moved)} access"
    reason = (
        f"crewline leaves this issue alone: {who} on {issue.project}, and a goal needs "
        f"{access_name(needed)} access or more (`min_filer_access`). To start it, a project "
        f"member with {access_name(needed)} access or more removes and adds the `{entry}` "
        "label again."
    )
    log.info("not a goal: issue=%s author=%s mover=%s", issue.ref, issue.author, mover)
    return reason


async def _tell(services: Services, issue: Issue, reason: str) -> None:
    await services.gateway.upsert_note(issue.project, issue.iid, FILER_ACCESS_KEY, reason)
