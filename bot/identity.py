"""Who may do what from Discord: the Discord-to-GitLab identity map and GitLab access levels.

A Discord user is nobody to crewline until ``discord.identities`` maps their id to a GitLab
username; every permission is then GitLab's own: the mapped user's access level on the
project, read through the API and reused for ``access_cache_seconds``. Discord roles
(``approver_role_ids``) narrow who may decide and operate, never widen it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.settings import DiscordSettings

log = logging.getLogger(__name__)

REPORTER = 20
LEVEL_NAMES = {10: "Guest", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}

LevelLookup = Callable[[str, str], Awaitable[int]]  # (project, gitlab username) -> level


class Need(StrEnum):
    READ = "read"  # board, stuck list, audit, learnings: Reporter on the project
    WRITE = "write"  # file a goal, answer a question: the configured level
    DECIDE = "decide"  # gates, retry, pause: the configured level and an approver role


@dataclass(frozen=True)
class Actor:
    """Whoever clicked or typed, as Discord tells it (nothing here is trusted yet)."""

    discord_id: int
    name: str
    role_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.discord_id})"


@dataclass(frozen=True)
class Person:
    """An actor whose identity and permission were checked for one operation."""

    actor: Actor
    gitlab_user: str

    @property
    def audit_name(self) -> str:
        return f"discord:{self.actor.discord_id} gitlab:{self.gitlab_user}"


class NotAllowed(Exception):
    """The actor may not do this; the message says why and what would change it."""


class Identities:
    def __init__(
        self,
        settings: DiscordSettings,
        level_of: LevelLookup,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._level_of = level_of
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[int, float]] = {}

    def gitlab_user(self, actor: Actor) -> str | None:
        return self.settings.identities.get(str(actor.discord_id))

    def discord_ids(self, gitlab_user: str) -> list[int]:
        """The Discord users mapped to ``gitlab_user`` (to tell a goal's filer)."""
        return [
            int(discord_id)
            for discord_id, username in self.settings.identities.items()
            if username == gitlab_user and discord_id.isdigit()
        ]

    def mapped(self, actor: Actor) -> Person:
        """The actor's GitLab identity without an API call (checks that must answer at once)."""
        username = self.gitlab_user(actor)
        if username is None:
            raise NotAllowed(
                f"{actor.name} is not mapped to a GitLab user: an admin adds "
                f'"{actor.discord_id}" = "<gitlab username>" under [discord.identities]'
            )
        return Person(actor, username)

    def has_approver_role(self, actor: Actor) -> bool:
        allowed = set(self.settings.approver_role_ids)
        return not allowed or bool(allowed & actor.role_ids)

    async def access_level(self, project: str, username: str) -> int:
        key = (project, username)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        level = await self._level_of(project, username)
        self._cache[key] = (level, now + self.settings.access_cache_seconds)
        return level

    async def require(self, actor: Actor, projects: Iterable[str], need: Need) -> Person:
        """The checked person, or :class:`NotAllowed` naming what is missing."""
        person = self.mapped(actor)
        if need is Need.DECIDE and not self.has_approver_role(actor):
            raise NotAllowed(
                f"{actor.name} has none of the approver roles (discord.approver_role_ids)"
            )
        wanted = REPORTER if need is Need.READ else self.settings.min_access_level
        for project in projects:
            level = await self.access_level(project, person.gitlab_user)
            if level < wanted:
                raise NotAllowed(
                    f"@{person.gitlab_user} has {_level_name(level)} access to {project}; "
                    f"this needs {_level_name(wanted)} or more"
                )
        return person

    async def visible(self, actor: Actor, projects: Iterable[str]) -> tuple[Person, list[str]]:
        """The projects the actor may read; :class:`NotAllowed` when there is none."""
        person = self.mapped(actor)
        seen = [
            project
            for project in projects
            if await self.access_level(project, person.gitlab_user) >= REPORTER
        ]
        if not seen:
            raise NotAllowed(f"@{person.gitlab_user} has no Reporter access to any project here")
        return person, seen


def _level_name(level: int) -> str:
    if level <= 0:
        return "no"
    return LEVEL_NAMES.get(level, f"level {level}")
