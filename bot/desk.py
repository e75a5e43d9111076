"""The desk: every human operation behind Discord's commands and buttons, free of Discord.

Each operation takes the :class:`~bot.identity.Actor` who asked, checks their permission
(GitLab access through the identity map, see ``bot/identity.py``), does the work through
the gateway and storage, and appends an audit entry naming the Discord user and the mapped
GitLab user (``denied`` and ``unchanged`` verdicts too). Operations are idempotent: doing
one twice changes nothing the second time and says who did it first, and when.

Bad input raises :class:`DeskError`, a refusal :class:`~bot.identity.NotAllowed`; both
messages are meant for the person who asked.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.app import Runtime
from bot.desk_work import (
    Question,
    StuckItem,
    goal_body,
    person_of,
    questions_in,
    record_filer,
    stuck_items,
)
from bot.desk_work import answer as answer_question
from bot.desk_work import requeue as requeue_issue
from bot.desk_work import retry as retry_issue
from bot.identity import Actor, Identities, Need, NotAllowed, Person
from bot.status import Board, board
from forge.client import ForgeError
from forge.guard import GuardBlocked
from roles.context import Services
from roles.engine.loop import PAUSE_ALL, pause_key
from roles.gates.decide import Decision, decide_merge, decide_plan, issue_filer
from roles.pause import PauseChange, set_paused
from storage import AuditEntry, Learning
from workflow import Gate

log = logging.getLogger(__name__)

T = TypeVar("T")
VIA = "Discord"
_REF = re.compile(r"^\s*(?:(?P<project>[\w.-]+(?:/[\w.-]+)+))?\s*#?\s*(?P<iid>\d+)\s*$")
_URL = re.compile(r"^\s*(?P<before>https?://\S+)/-/issues/(?P<iid>\d+)\b")
TITLE_LIMIT = 255


@dataclass(frozen=True)
class Reply:
    changed: bool  # False: nothing changed (already done, stale, not applicable)
    message: str
    url: str = ""
    pending: bool = False  # a decision that could not be applied: the gate still waits


class DeskError(Exception):
    """The request cannot be carried out as asked; the message says what to change."""


def project_key(path: str) -> str:
    """A short stable key of a project path, for Discord custom ids (100 characters max)."""
    return hashlib.sha256(path.encode()).hexdigest()[:10]


class Desk:
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

    # ------------------------------------------------------------ names

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

    # ------------------------------------------------------------ authorisation and audit

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

    # ------------------------------------------------------------ goals

    async def file_goal(
        self,
        actor: Actor,
        *,
        title: str,
        description: str,
        criteria: str,
        project: str | None = None,
        request_id: str,
    ) -> Reply:
        """File a goal at the workflow's entry state; one issue per ``request_id``."""
        path = self.project(project)
        title = " ".join(title.split())
        if not title:
            raise DeskError("a goal needs a title")
        if len(title) > TITLE_LIMIT:
            raise DeskError(f"the title has {len(title)} characters; GitLab takes {TITLE_LIMIT}")
        person = await self._person(actor, "desk.goal", path, [path], Need.WRITE)
        key = f"desk:goal:{request_id}"
        lease = await self.services.storage.leases.acquire(key, person.audit_name, 120)
        if lease is None:
            return Reply(False, "this goal is being filed already")
        try:
            earlier = await self.services.storage.settings.get_json(key)
            if earlier is not None:
                await self._audit(person, "desk.goal", earlier["ref"], {"request": key}, False)
                return Reply(False, f"already filed as {earlier['ref']}", earlier["url"])
            wf = self.services.workflow
            # A person's words, posted under crewline's name: the sink removes any marker
            # in them (forge/sink.py); only the filer marker goal_body seals is kept.
            body = goal_body(description, criteria, person.gitlab_user, self.via)
            issue = await self._gitlab(
                lambda: self.services.gateway.create_issue(
                    path, title, body, [wf.state(wf.entry).label]
                )
            )
            await self._gitlab(
                lambda: record_filer(
                    self.services.gateway, path, issue.iid, person.gitlab_user, self.via
                )
            )
            await self.services.storage.settings.set_json(
                key, {"ref": issue.ref, "url": issue.web_url}
            )
        finally:
            await self.services.storage.leases.release(lease)
        await self._audit(person, "desk.goal", issue.ref, {"title": title}, True)
        log.info("goal filed: issue=%s by=%s", issue.ref, person.audit_name)
        return Reply(True, f"filed {issue.ref} at {wf.entry}: {title}", issue.web_url)

    async def filer(self, project: str, iid: int) -> str:
        """The GitLab user who filed the goal (the marker a surface wrote, else the author)."""
        issue = await self.services.gateway.get_issue(project, iid)
        notes = await self.services.gateway.notes(project, iid)
        return issue_filer(issue, notes)

    # ------------------------------------------------------------ gates

    async def decide(
        self,
        actor: Actor,
        project: str,
        iid: int,
        gate: Gate,
        revision: str,
        *,
        approve: bool,
        feedback: str = "",
    ) -> Reply:
        """Approve ``revision`` at ``gate``, or request changes with ``feedback``."""
        path = self.project(project)
        target, what = f"{path}#{iid}", f"desk.decide.{gate}"
        person = await self._person(actor, what, target, [path], Need.DECIDE)
        services = self.services
        common: dict[str, Any] = {
            "revision": revision,
            "approve": approve,
            "who": f"@{person.gitlab_user}",
            "via": self.via,
            "feedback": feedback,
            "worker": services.worker,
        }
        if gate == "merge":
            common.update(
                approver=person.gitlab_user,
                merger=services.merger,
                require_second_person=services.projects[path].require_second_person,
            )
        decide = decide_plan if gate == "plan" else decide_merge
        decision: Decision = await self._gitlab(
            lambda: decide(services.gateway, services.storage.leases, path, iid, **common)
        )
        payload = {"revision": revision, "approve": approve, "feedback": feedback}
        await self._audit(person, what, target, payload, decision.applied)
        return Reply(decision.applied, decision.message, pending=decision.pending)

    # ------------------------------------------------------------ reading

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

    # ------------------------------------------------------------ operating

    async def retry(self, actor: Actor, project: str, iid: int) -> Reply:
        """A blocked or failed issue goes back to the stage it came from."""
        return await self._issue_op(actor, "desk.retry", project, iid, retry_issue)

    async def requeue(self, actor: Actor, project: str, iid: int) -> Reply:
        """A running issue whose claim expired goes back to its ready state now."""
        return await self._issue_op(actor, "desk.requeue", project, iid, requeue_issue)

    async def _issue_op(
        self,
        actor: Actor,
        what: str,
        project: str,
        iid: int,
        op: Callable[[Services, str, int, str, str], Awaitable[tuple[bool, str]]],
    ) -> Reply:
        path = self.project(project)
        target = f"{path}#{iid}"
        person = await self._person(actor, what, target, [path], Need.DECIDE)
        lease = await self.services.storage.leases.acquire(f"desk:{target}", person.audit_name, 60)
        if lease is None:
            return Reply(False, f"someone is changing {target} right now; try again")
        try:
            changed, message = await self._gitlab(
                lambda: op(self.services, path, iid, f"@{person.gitlab_user}", self.via)
            )
        finally:
            await self.services.storage.leases.release(lease)
        if not changed:
            message += await self._first(what, target)
        await self._audit(person, what, target, {}, changed)
        return Reply(changed, message)

    async def answer(
        self, actor: Actor, project: str, iid: int, question_note_id: int, text: str
    ) -> Reply:
        """Post a human's answer to an agent's question and resume the stage that asked."""
        if not text.strip():
            raise DeskError("the answer is empty")
        path = self.project(project)
        target = f"{path}#{iid}"
        person = await self._person(actor, "desk.answer", target, [path], Need.WRITE)
        lease = await self.services.storage.leases.acquire(f"desk:{target}", person.audit_name, 60)
        if lease is None:
            return Reply(False, f"someone is changing {target} right now; try again")
        try:
            changed, message = await self._gitlab(
                lambda: answer_question(
                    self.services, path, iid, question_note_id, text, person.gitlab_user, self.via
                )
            )
        finally:
            await self.services.storage.leases.release(lease)
        await self._audit(person, "desk.answer", target, {"question": question_note_id}, changed)
        return Reply(changed, message)

    async def pause(self, actor: Actor, project: str | None = None) -> Reply:
        """Stop claiming new work, everywhere or on one project (running work finishes)."""
        return await self._flag(actor, project, paused=True)

    async def resume(self, actor: Actor, project: str | None = None) -> Reply:
        return await self._flag(actor, project, paused=False)

    async def _flag(self, actor: Actor, project: str | None, *, paused: bool) -> Reply:
        """Written on the projects' control issues, so every host stops (or resumes)."""
        path = self.project(project) if project else None
        key = pause_key(path) if path else PAUSE_ALL
        what = "desk.pause" if paused else "desk.resume"
        affected = [path] if path else self.projects
        person = await self._person(actor, what, key, affected, Need.DECIDE)
        change: PauseChange = await self._gitlab(
            lambda: set_paused(
                self.services.fleet, self.projects, path, paused=paused,
                who=f"@{person.gitlab_user} via {self.via}",
            )
        )  # fmt: skip
        message = change.message
        if not change.changed:
            message += await self._first(what, key)
        await self._audit(person, what, key, {}, change.changed)
        if change.changed and not paused:
            self.runtime.engine.wake()
        return Reply(change.changed, message)
