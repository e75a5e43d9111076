"""The desk's ground: the configured projects and how a person names an issue, the person behind
a Discord user, the audit entry of each operation, and GitLab's refusals turned into plain
answers. The base of :class:`bot.desk.Desk`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.app import Runtime
from bot.desk_work import (
    person_of,
)
from bot.identity import Actor, Identities, Need, NotAllowed, Person
from forge.client import ForgeError
from forge.guard import GuardBlocked
from roles.context import Services
from workflow import Gate

T = TypeVar("T")
VIA = "Discord"
_REF = re.compile(r"^\s*(?:(?P<project>[\w.-]+(?:/[\w.-]+)+))?\s*#?\s*(?P<iid>\d+)\s*$")
_URL = re.compile(r"^\s*(?P<before>https?://\S+)/-/issues/(?P<iid>\d+)\b")


class DeskError(Exception):
    """The request cannot be carried out as asked; the message says what to change."""


def project_key(path: str) -> str:
    """A short stable key of a project path, for Discord custom ids (100 characters max)."""
    return hashlib.sha256(path.encode()).hexdigest()[:10]


class DeskBase:
    """What every desk operation stands on: the projects and how a person names them, who is
    asking, the audit entry, and GitLab's refusals told plainly."""

    def __init__(self, runtime: Runtime, identities: Identities, *, via: str = VIA) -> None:
        self.runtime = runtime
        self.identities = identities
        self.via = via

    @property
    def services(self) -> Services:
        return self.runtime.services

    @property
    def projects(self) -> list[str]:
        return list(self.services.projects)

    def project(self, name: str | None) -> str:
        """The configured project ``name`` names; the only one when ``name`` is empty."""
        if name is None or not name.strip():
            if len(self.projects) == 1:
                return self.projects[0]
            raise DeskError(f"several projects are configured: name one of {self._listed()}")
        if name.strip() in self.services.projects:
            return name.strip()
        raise DeskError(f"{name!r} is not a configured project: use one of {self._listed()}")

    def _listed(self) -> str:
        return ", ".join(self.projects)

    def project_for_key(self, key: str) -> str:
        for path in self.projects:
            if project_key(path) == key:
                return path
        raise DeskError("this card belongs to a project crewline no longer works on")

    def parse_ref(self, text: str) -> tuple[str, int]:
        """``group/app#12``, ``#12``, ``12`` (one project) or an issue URL -> (project, iid)."""
        url = _URL.match(text)
        if url is not None:
            before = url.group("before")
            for path in self.projects:
                if before.endswith(f"/{path}"):
                    return path, int(url.group("iid"))
            raise DeskError(f"{before} is not a configured project: use one of {self._listed()}")
        match = _REF.match(text)
        if match is None:
            raise DeskError(f"{text!r} names no issue: write group/project#12 (or #12)")
        return self.project(match.group("project")), int(match.group("iid"))

    def gate_of(self, state: str) -> Gate | None:
        known = self.services.workflow.states.get(state)
        return known.gate if known is not None else None

    async def _person(
        self, actor: Actor, what: str, target: str, projects: list[str], need: Need
    ) -> Person:
        try:
            return await self.identities.require(actor, projects, need)
        except NotAllowed as denied:
            await self._audit_actor(actor, what, target, {"why": str(denied)}, "denied")
            raise
        except ForgeError as error:
            raise DeskError(f"GitLab did not answer the permission check: {error}") from None

    async def _audit_actor(
        self, actor: Actor, what: str, target: str, payload: Any, verdict: str
    ) -> None:
        username = self.identities.gitlab_user(actor) or "-"
        who = f"discord:{actor.discord_id} gitlab:{username}"
        await self.services.storage.audit.append(who, what, target, payload, verdict)

    async def _audit(
        self, person: Person, what: str, target: str, payload: Any, changed: bool
    ) -> None:
        verdict = "ok" if changed else "unchanged"
        await self.services.storage.audit.append(person.audit_name, what, target, payload, verdict)

    async def _first(self, what: str, target: str) -> str:
        """Who last did ``what`` to ``target`` successfully, and when ("" if nobody)."""
        for entry in await self.services.storage.audit.for_target(target, limit=200):
            if entry.what == what and entry.verdict == "ok":
                return f" (by {person_of(entry.who)} at {entry.at:%Y-%m-%d %H:%M} UTC)"
        return ""

    async def _gitlab(self, action: Callable[[], Awaitable[T]]) -> T:
        try:
            return await action()
        except GuardBlocked as blocked:
            raise DeskError(f"crewline refused to write this to GitLab: {blocked}") from None
        except ForgeError as error:
            raise DeskError(f"GitLab refused or did not answer: {error}") from None
