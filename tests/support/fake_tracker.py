"""An in-memory ``IssueTracker`` (``forge/ports.py``): issues, labels and notes kept in a
:class:`~tests.support.fake_state.FakeGitLab`, for tests of a role's logic that need no
HTTP. ``tests/contract/`` runs one suite against this fake and against the real
``forge.gateway.Gateway`` over the simulator, so the fake cannot drift from GitLab.

What is real here, not re-implemented: the keyed notes (``find_note``, ``upsert_note``,
``remove_copies``, ``finish_pending_notes``) are ``forge.gateway_notes.NoteOps``'s own code,
and ``get_issue``, ``list_issues``, ``list_ready``, ``transition`` and what follows an issue
update (``updated``) are ``forge.gateway_issues.IssueOps``'s, the base this class shares
with ``forge.gateway.Gateway``, over this class's reads and writes; so are the query and
payload builders; the trust filter (``forge.trust.Trust``:
only crewline's users' notes keep their hidden markers), the one-off post markers
(``forge.markers.findable``), the issue listing (``forge.issue_index.IssueIndex`` over this
fake's query), the access cache and the own-write echo are the real classes; every write
passes the real ``AuditedCalls`` (marker sink, guard, audit) over an in-process client.

crewline acts as ``crewline-bot``; a test acts as anyone else through
:meth:`FakeTracker.note_by` (a human's comment, a forged marker), :meth:`FakeTracker.issue_by`
and :meth:`FakeTracker.relabel_by`, and gives users access with ``state.add_member``.

Out of scope (``NotImplementedError`` naming the method): ``ci`` (the flaky-test doctor's CI
history) and ``note_awards``. ``note_replies`` answers no replies: the fake has no threads
on issues. forge's helpers that call GitLab through ``tracker.calls`` with python-gitlab
themselves (``forge.labels``, creating the control issue, ``forge.privilege``) get
``NotImplementedError`` naming the operation (``tests/support/fake_state.NoGitLab``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from forge.access import AccessLevels
from forge.gateway import merge_states, update_payload
from forge.gateway_issues import IssueOps
from forge.gateway_notes import EDITED, Noteable, _target
from forge.issue_index import IssueIndex
from forge.markers import findable
from forge.own_writes import OwnWrites
from forge.pending_notes import PendingNotes
from forge.trust import OwnUsers
from forge.types import Award, Issue, LabelEvent, Note
from tests.support.fake_merge_requests import FakeMergeRequests
from tests.support.fake_state import (
    BOT,
    USER_IDS,
    FakeGitLab,
    FakeTrust,
    MemoryAudit,
    audited_calls,
)
from workflow import Workflow, default_workflow


class FakeTracker(IssueOps):
    """The real gateway's issue and note logic (``IssueOps``, ``NoteOps``) over this
    fake's reads and writes (see the module docstring)."""

    def __init__(
        self,
        state: FakeGitLab | None = None,
        *,
        workflow: Workflow | None = None,
        who: str = "crewline-test",
    ) -> None:
        self.state = state if state is not None else FakeGitLab()
        self.workflow = workflow or default_workflow()
        self.audit = MemoryAudit()
        self.calls = audited_calls(self.audit, who)
        own = OwnUsers(frozenset({USER_IDS[BOT]}), frozenset({BOT}), bot_id=USER_IDS[BOT])
        self.trust = FakeTrust(self.calls, own, editors=self.description_editor)
        self.merges = FakeMergeRequests(self.state, self.calls, self.trust)
        self.access = AccessLevels(self.member_access_level)
        self.issues = _FakeIndex(self, keep_closed=merge_states(self.workflow))
        self.own_writes = OwnWrites()
        self.moved: list[Callable[[Issue], None]] = []
        self.pending_notes = PendingNotes()

    @property
    def url(self) -> str:
        return self.calls.client.url

    @property
    def ci(self) -> Any:
        raise NotImplementedError("FakeTracker.ci: the fake keeps no CI history")

    # ------------------------------------------------------------ issues

    async def create_issue(
        self, project: str, title: str, description: str, labels: Sequence[str] = ()
    ) -> Issue:
        payload = {"title": title, "description": description, "labels": ",".join(labels)}

        def create(_: Any, data: dict[str, Any]) -> dict[str, Any]:
            return self.state.new_issue(project, data, BOT)

        data = await self.calls.write(
            "issue.create", project, payload, create, text_fields=("title", "description")
        )
        issue = Issue.of(project, data)
        self.trust.wrote(issue.ref, issue.description)
        return issue

    def _issue_reader(self, project: str, iid: int) -> Callable[[Any], dict[str, Any]]:
        return lambda _: dict(self.state.issue(project, iid))

    def _issue_lister(
        self, project: str, params: dict[str, Any]
    ) -> Callable[[Any], list[dict[str, Any]]]:
        return lambda _: self.state.query(project, params)

    async def update_issue(
        self,
        project: str,
        iid: int,
        *,
        add_labels: Sequence[str] = (),
        remove_labels: Sequence[str] = (),
        state_event: str | None = None,
        description: str | None = None,
    ) -> Issue:
        payload = update_payload(add_labels, remove_labels, state_event, description)

        def update(_: Any, data: dict[str, Any]) -> dict[str, Any]:
            return self.state.update_issue(project, iid, data, BOT)

        data = await self.calls.write(
            "issue.update", f"{project}#{iid}", payload, update, text_fields=("description",)
        )
        return await self.updated(project, data, wrote_description=description is not None)

    async def label_events(self, project: str, iid: int) -> list[LabelEvent]:
        def list_(_: Any) -> list[dict[str, Any]]:
            self.state.issue(project, iid)
            return list(self.state.label_events.get((project, iid), []))

        events = await self.calls.read("issue.label_events", f"{project}#{iid}", {}, list_)
        return sorted((LabelEvent.of(event) for event in events), key=lambda e: e.id)

    async def blocked_by(self, project: str, iid: int) -> list[int]:
        """The issues linked as blocking this one (read like the gateway's, so the audit
        counts it as ``gitlab.issue.links``)."""

        def list_(_: Any) -> list[int]:
            self.state.issue(project, iid)
            return list(self.state.blocked_by.get((project, iid), []))

        return await self.calls.read("issue.links", f"{project}#{iid}", {}, list_)

    async def member_access_level(self, project: str, username: str) -> int:
        def get(_: Any) -> int:
            return self.state.members.get((project, username), 0)

        return await self.calls.read("member.access_level", project, {"username": username}, get)

    # ------------------------------------------------------------ notes

    async def note_awards(self, project: str, iid: int, note_id: int) -> list[Award]:
        raise NotImplementedError("FakeTracker.note_awards")

    async def note_replies(self, project: str, iid: int, note_id: int) -> list[Note]:
        return []  # no threads on the fake's issues: nobody replied

    async def description_editor(self, project: str, iid: int) -> tuple[int, str] | None:
        edits = [
            note
            for note in self.state.notes.get((project, "issue", iid), [])
            if note["system"] and note["body"] == EDITED
        ]
        if not edits:
            return None
        author = edits[-1]["author"]
        return int(author["id"]), str(author["username"])

    async def notes(self, project: str, iid: int, *, on: Noteable = "issue") -> list[Note]:
        target = _target(project, on, iid)
        found = await self.calls.read(
            "note.list", target, {}, lambda _: list(self.state.notes_of(project, on, iid))
        )
        return await self.trust.notes(target, sorted(map(Note.of, found), key=lambda n: n.id))

    async def post_note(
        self, project: str, iid: int, body: str, *, on: Noteable = "issue", quoted: bool = False
    ) -> Note:
        found_by = findable(body)  # the one-off marker the real post adds, added the same way

        def create(_: Any, data: dict[str, Any]) -> Note:
            sent = found_by.sent(data["body"])
            return Note.of(self.state.add_note(project, on, iid, sent, BOT))

        note = await self.calls.write(
            "note.create", _target(project, on, iid), {"body": body}, create,
            text_fields=("body",), redact_fields=("body",) if quoted else (),
        )  # fmt: skip
        self.own_writes.note_written(note.id)
        return await self.trust.note(_target(project, on, iid), note)

    def _note_editor(
        self, project: str, on: Noteable, iid: int, note_id: int
    ) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
        return lambda _, data: self.state.edit_note(project, on, iid, note_id, data["body"])

    async def delete_note(
        self, project: str, iid: int, note_id: int, *, on: Noteable = "issue"
    ) -> None:
        def delete(_: Any, __: dict[str, Any]) -> None:
            notes = self.state.notes_of(project, on, iid)
            notes[:] = [note for note in notes if note["id"] != note_id]  # gone already: fine

        target = f"{_target(project, on, iid)}/note/{note_id}"
        await self.calls.write("note.delete", target, {}, delete)

    # ------------------------------------------------------------ others' writes (tests)

    def note_by(
        self, username: str, project: str, iid: int, body: str, *, on: Noteable = "issue"
    ) -> int:
        """``username`` comments, as typed (no sink, no guard: not crewline's write)."""
        return int(self.state.add_note(project, on, iid, body, username)["id"])

    def issue_by(
        self, username: str, project: str, title: str, description: str = "", *labels: str
    ) -> int:
        """``username`` files an issue (a human's goal): its iid."""
        data = {"title": title, "description": description, "labels": ",".join(labels)}
        return int(self.state.new_issue(project, data, username)["iid"])

    def relabel_by(
        self, username: str, project: str, iid: int, add: Sequence[str], remove: Sequence[str] = ()
    ) -> None:
        """``username`` changes the issue's labels in GitLab (label events name them)."""
        data = {"add_labels": ",".join(add), "remove_labels": ",".join(remove)}
        self.state.update_issue(project, iid, data, username)


class _FakeIndex(IssueIndex):
    """The real issue index; its one listing call answered from the fake's issues."""

    def __init__(self, tracker: FakeTracker, *, keep_closed: Sequence[str]) -> None:
        super().__init__(tracker, keep_closed=keep_closed)
        self.state = tracker.state

    async def _list(
        self, project: str, params: dict[str, Any], pages: int | None = None
    ) -> list[dict[str, Any]]:
        found = self.state.query(project, params)
        return found[: int(params.get("per_page", 100))] if pages == 1 else found
