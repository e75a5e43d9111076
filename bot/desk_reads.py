"""The desk's reads: the board, stuck work, the audit trail, learnings, an issue's open
questions and spend, each shown only to whom may read it."""

from __future__ import annotations

from bot.desk_base import DeskBase, DeskError
from bot.desk_work import (
    Question,
    StuckItem,
    questions_in,
    stuck_items,
)
from bot.identity import Actor, Need, NotAllowed, Person
from bot.status import Board, board
from forge.client import ForgeError
from storage import AuditEntry, Learning


class DeskReads(DeskBase):
    """What a person may read: the board, stuck work, the audit trail, learnings, an issue's
    open questions and spend."""

    async def board(self, actor: Actor, project: str | None = None) -> Board:
        wanted = [self.project(project)] if project else self.projects
        _, visible = await self._readable(actor, "desk.board", wanted)
        full = await board(self.runtime)
        items = [item for item in full.items if item.project in visible]
        counts: dict[str, int] = {state: 0 for state in full.counts}
        for item in items:
            counts[item.state] += 1
        return Board(counts, items, full.rate, full.fleet, full.flaky)

    async def stuck(self, actor: Actor) -> list[StuckItem]:
        _, visible = await self._readable(actor, "desk.stuck", self.projects)
        schedule = self.runtime.config.schedule
        return await stuck_items(
            self.services, visible, schedule.stuck_after_seconds, schedule.stuck_after_by_state
        )

    async def audit_trail(
        self, actor: Actor, project: str, iid: int, limit: int = 20
    ) -> list[AuditEntry]:
        path = self.project(project)
        await self._readable(actor, "desk.audit", [path], require_all=True)
        return await self.services.storage.audit.for_target(f"{path}#{iid}", limit=limit)

    async def learnings(
        self, actor: Actor, query: str, project: str | None = None, limit: int = 5
    ) -> list[Learning]:
        if not query.strip():
            raise DeskError("say what to look for: /learnings <words>")
        wanted = [self.project(project)] if project else self.projects
        _, visible = await self._readable(actor, "desk.learnings", wanted)
        found: list[Learning] = []
        for path in visible:
            found += await self.services.storage.learnings.search(query, project=path, limit=limit)
        return found[:limit] if len(visible) == 1 else found

    async def _readable(
        self, actor: Actor, what: str, wanted: list[str], *, require_all: bool = False
    ) -> tuple[Person, list[str]]:
        target = ",".join(wanted)
        try:
            if require_all:
                person, visible = await self.identities.require(actor, wanted, Need.READ), wanted
            else:
                person, visible = await self.identities.visible(actor, wanted)
        except NotAllowed as denied:
            await self._audit_actor(actor, what, target, {"why": str(denied)}, "denied")
            raise
        except ForgeError as error:
            raise DeskError(f"GitLab did not answer the permission check: {error}") from None
        await self.services.storage.audit.append(person.audit_name, what, target, {}, "ok")
        return person, visible

    async def questions(self, project: str, iid: int) -> list[Question]:
        """Every question agents asked on the issue, answered or not (for the surfaces)."""
        return questions_in(await self.services.gateway.notes(project, iid))

    async def spend(self, project: str, iid: int) -> float:
        return (await self.services.storage.runs.spend(project=project, iid=iid)).cost_usd
