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

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.desk_base import DeskError
from bot.desk_reads import DeskReads
from bot.desk_work import answer as answer_question
from bot.desk_work import (
    goal_body,
    record_filer,
)
from bot.desk_work import requeue as requeue_issue
from bot.desk_work import retry as retry_issue
from bot.identity import Actor, Need
from roles.context import Services
from roles.engine.loop import PAUSE_ALL, pause_key
from roles.gates.decide import Decision, decide_merge, decide_plan, issue_filer
from roles.pause import PauseChange, set_paused
from workflow import Gate

log = logging.getLogger(__name__)

TITLE_LIMIT = 255


@dataclass(frozen=True)
class Reply:
    changed: bool  # False: nothing changed (already done, stale, not applicable)
    message: str
    url: str = ""
    pending: bool = False  # a decision that could not be applied: the gate still waits


class Desk(DeskReads):
    # ------------------------------------------------------------ names

    # ------------------------------------------------------------ authorisation and audit

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
