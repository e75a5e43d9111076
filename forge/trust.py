"""Only crewline's own notes carry meaning.

Every host shares one bot user; the merge identity (when configured) is a second user.
crewline learns both user ids with ``GET /user`` before it reads anything, and every note,
discussion note and issue description it reads passes through :meth:`Trust.note`,
:meth:`Trust.issue` or :meth:`Trust.discussions`: text written by anyone else keeps its
words but loses every hidden ``<!-- crewline:... -->`` marker, and the attempt is written
to the audit trail once per note with the verdict ``forged``. So the readers of plans,
decisions, filers, MR links, QA passes, claims, keyed notes, questions and answers and
flaky-test goals never see a marker they did not write, without a check of their own
(decision record 0017).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import gitlab

from forge.calls import AuditedCalls
from forge.client import ForgeError
from forge.mr_types import Discussion

# Re-exported: the readers' side of the markers (forge/sink.py is the writers').
from forge.sink import FORGED as FORGED
from forge.sink import carries_marker as carries_marker
from forge.sink import defang as defang
from forge.types import Issue, Note

log = logging.getLogger(__name__)

VERDICT = "forged"


# (project, iid) -> (user id, username) of the description's last editor, or None.
Editors = Callable[[str, int], Awaitable[tuple[int, str] | None]]
_WRITTEN_KEPT = 5000  # issues whose description crewline remembers writing


class IdentityUnknown(Exception):
    """crewline could not learn who it is on GitLab: it must not start (trusting every
    note's author instead would let anyone drive it)."""


@dataclass(frozen=True)
class OwnUsers:
    """crewline's GitLab users: the bot's (shared by every host) and the merge identity's."""

    ids: frozenset[int]
    usernames: frozenset[str]
    bot_id: int = 0  # the bot token's user: it files every issue crewline files

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, int) and user_id in self.ids


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def defang_all(value: Any) -> Any:
    """``value`` (decoded JSON: a CI test report) with :func:`defang` applied to every
    string in it."""
    if isinstance(value, str):
        return defang(value)
    if isinstance(value, list):
        return [defang_all(item) for item in value]
    if isinstance(value, dict):
        return {key: defang_all(item) for key, item in value.items()}
    return value


class Trust:
    """Learns crewline's own users and strips the markers of everyone else."""

    def __init__(self, calls: AuditedCalls, editors: Editors | None = None) -> None:
        self.calls = calls
        self._own: OwnUsers | None = None
        self._audited: set[str] = set()
        # Who last edited an issue's description (GitLab's REST issue does not say; its
        # "changed the description" system note does): see Gateway.description_editor.
        self._editors = editors
        self._written: dict[str, str] = {}  # issue ref -> digest of crewline's description

    async def learn(self, *others: AuditedCalls) -> OwnUsers:
        """Ask ``GET /user`` with the bot's token and with each of ``others`` (the merge
        identity's); raises :class:`IdentityUnknown` naming the failing token."""
        users = [await _whoami(self.calls, "the bot token (CREWLINE_GITLAB_TOKEN)")]
        for other in others:
            users.append(await _whoami(other, "the merge token (CREWLINE_GITLAB_MERGE_TOKEN)"))
        self._own = OwnUsers(
            ids=frozenset(user_id for user_id, _ in users),
            usernames=frozenset(name for _, name in users),
            bot_id=users[0][0],
        )
        log.info("crewline acts on GitLab as %s", ", ".join(sorted(self._own.usernames)))
        return self._own

    async def own(self) -> OwnUsers:
        """crewline's users; learned with the bot's token on first use if :meth:`learn`
        was not called at start."""
        return self._own if self._own is not None else await self.learn()

    async def authored_by_crewline(self, author_id: int) -> bool:
        return author_id in await self.own()

    async def note(self, target: str, note: Note) -> Note:
        if await self.authored_by_crewline(note.author_id):
            return replace(note, by_crewline=True)
        if not carries_marker(note.body):
            return note
        await self._forged(f"{target}/note/{note.id}", "note", note.author, note.author_id)
        return replace(note, body=defang(note.body))

    async def notes(self, target: str, notes: Iterable[Note]) -> list[Note]:
        return [await self.note(target, note) for note in notes]

    async def issue(self, issue: Issue) -> Issue:
        """The issue with its description's markers removed unless crewline wrote the
        description: crewline filed the issue and nobody else edited the description since
        crewline last wrote it (the newest "changed the description" system note, if any,
        is by one of crewline's users)."""
        if carries_marker(issue.title):  # crewline writes none there, but quotes titles
            issue = replace(issue, title=defang(issue.title))
        if not carries_marker(issue.description):
            return issue
        author, author_id = issue.author, issue.author_id
        if await self.authored_by_crewline(issue.author_id):
            if self._written.get(issue.ref) == _digest(issue.description):
                return issue  # the very text crewline last wrote or found to be its own
            editor = (
                None if self._editors is None else await self._editors(issue.project, issue.iid)
            )
            if editor is None or await self.authored_by_crewline(editor[0]):
                self.wrote(issue.ref, issue.description)
                return issue
            author_id, author = editor
        await self._forged(f"{issue.ref}/description", "issue", author, author_id)
        return replace(issue, description=defang(issue.description))

    def wrote(self, ref: str, description: str) -> None:
        """crewline wrote ``description`` on issue ``ref`` (or found it was the last to):
        reading back that exact text needs no look at who edited it. Only the newest text
        is kept per issue, so an older version someone puts back is looked at again."""
        if len(self._written) > _WRITTEN_KEPT:
            self._written.clear()
        self._written[ref] = _digest(description)

    async def discussions(self, target: str, found: list[Discussion]) -> list[Discussion]:
        """Merge request discussions with other users' markers removed."""
        own = await self.own()
        cleaned = []
        for discussion in found:
            notes = []
            for note in discussion.notes:
                if note.author_id not in own and carries_marker(note.body):
                    where = f"{target}/note/{note.id}"
                    await self._forged(where, "note", note.author, note.author_id)
                    note = replace(note, body=defang(note.body))
                notes.append(note)
            cleaned.append(replace(discussion, notes=tuple(notes)))
        return cleaned

    async def _forged(self, target: str, kind: str, author: str, author_id: int) -> None:
        if target in self._audited:
            return
        self._audited.add(target)
        log.warning("ignored crewline markers in a %s by @%s: %s", kind, author, target)
        if self.calls.audit is not None:
            await self.calls.audit.append(
                f"gitlab:@{author or 'unknown'}",
                f"gitlab.{kind}.forged_marker",
                target,
                {"author": author, "author_id": author_id},
                VERDICT,
            )


async def _whoami(calls: AuditedCalls, which: str) -> tuple[int, str]:
    def get(gl: gitlab.Gitlab) -> tuple[int, str]:
        gl.auth()
        user = gl.user
        if user is None:
            raise gitlab.exceptions.GitlabAuthenticationError("GET /user returned no user")
        return int(user.id), str(user.username)

    try:
        return await calls.read("user.get", "user", {}, get)
    except (ForgeError, gitlab.exceptions.GitlabError) as error:
        raise IdentityUnknown(
            f"crewline could not learn its own GitLab user with {which} (GET /user: {error}). "
            "It will not start without it: it could not tell its own notes from forged ones. "
            "Check the token and gitlab.url, then start again."
        ) from error
