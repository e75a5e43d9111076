"""The async facade roles use for issues, labels and notes: operations named for what
roles need, each one audited, every write screened by the guard.

Notes crewline writes carry a hidden key (``<!-- crewline:note key=... -->``) and are
looked up by it before posting, so a run that crashes between "post" and "record" and
is started again finds its note instead of posting a second copy.

Every note crewline posts carries a hidden marker that finds it again (:mod:`forge.markers`):
its key, its claim marker, or else a one-off ``<!-- crewline:post id=... -->``. When GitLab's answer to the
POST is lost (a 5xx, a timeout, a reset), the notes are searched for that marker before
any retry, so a lost answer never becomes a second copy (docs/decisions/0015).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

import gitlab

from forge import metrics
from forge.access import AccessLevels
from forge.calls import AuditedCalls, AuditSink
from forge.ci_history import CiHistory
from forge.client import ForgeNotFound, GitLabClient, project_path, raw_get, raw_list
from forge.guard import Guard
from forge.issue_index import IssueIndex
from forge.markers import NOTE_MARKER as NOTE_MARKER  # roles import the markers from here
from forge.markers import findable, later_copies
from forge.markers import note_marker as note_marker
from forge.merge_gateway import MergeGateway
from forge.own_writes import OwnWrites
from forge.trust import Trust
from forge.types import Award, Issue, LabelEvent, Note
from workflow import UnknownState, Workflow, label_change, read_state

PER_PAGE = 100
EDITED = "changed the description"  # GitLab's system note when an issue's description is edited

Noteable = Literal["issue", "mr"]


class StaleState(Exception):
    """The issue is no longer in the state the caller expected (someone else moved it)."""

    def __init__(self, issue: Issue, expected: Collection[str], actual: str | None) -> None:
        self.issue = issue
        self.expected = tuple(expected)
        self.actual = actual
        super().__init__(
            f"{issue.ref} is in {actual or 'no workflow state'}, expected one of {sorted(expected)}"
        )


class Gateway:
    def __init__(
        self,
        client: GitLabClient,
        *,
        guard: Guard,
        audit: AuditSink | None,
        workflow: Workflow,
        who: str,
    ) -> None:
        self.calls = AuditedCalls(client, guard, audit, who)
        self.workflow = workflow
        # Everything read back from GitLab passes through ``trust``: only crewline's own
        # users' notes and descriptions keep their hidden markers.
        self.trust = Trust(self.calls, editors=self.description_editor)
        self.merges = MergeGateway(self.calls, self.trust)
        self.ci = CiHistory(self.calls)
        self.access = AccessLevels(self.member_access_level)
        self._project_ids: dict[str, int] = {}
        # One listing per pass, shared by the engine, the janitor and the gates; closed
        # issues are kept where a human may have merged their MR (the janitor's case).
        self.issues = IssueIndex(self, keep_closed=_merge_states(workflow))
        # The echo of our own writes wakes nothing; listeners hear of our moves directly.
        self.own_writes = OwnWrites()
        self.moved: list[Callable[[Issue], None]] = []

    async def project_id(self, project: str) -> int:
        """The numeric id of ``project`` (a path), asked once per process: it never changes."""
        if project not in self._project_ids:

            def get(gl: gitlab.Gitlab) -> int:
                return int(gl.projects.get(project).id)

            self._project_ids[project] = await self.calls.read("project.get", project, {}, get)
        return self._project_ids[project]

    @property
    def url(self) -> str:
        return self.calls.client.url

    # ------------------------------------------------------------ issues

    async def create_issue(
        self, project: str, title: str, description: str, labels: Sequence[str] = ()
    ) -> Issue:
        payload = {"title": title, "description": description, "labels": ",".join(labels)}

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).issues.create(data).attributes)

        # No lookup can tell a lost answer from a refusal here: not retried blindly.
        data = await self.calls.write(
            "issue.create",
            project,
            payload,
            create,
            text_fields=("title", "description"),
            once=True,
        )
        issue = Issue.of(project, data)
        self.trust.wrote(issue.ref, issue.description)
        return issue

    async def get_issue(self, project: str, iid: int) -> Issue:
        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            return raw_get(gl, project_path(project, "issues", iid))

        data = await self.calls.read("issue.get", f"{project}#{iid}", {}, get)
        issue = await self.trust.issue(Issue.of(project, data))
        self.issues.observe(issue)
        return issue

    async def list_issues(
        self,
        project: str,
        *,
        labels: Sequence[str] = (),
        updated_after: str | None = None,
        state: str = "opened",
        author_id: int | None = None,
    ) -> list[Issue]:
        """Issues in ``state`` carrying every label in ``labels`` (and filed by
        ``author_id`` when given), oldest update first, all pages."""
        params: dict[str, Any] = {
            "state": state,
            "order_by": "updated_at",
            "sort": "asc",
            "per_page": PER_PAGE,
        }
        if labels:
            params["labels"] = ",".join(labels)
        if updated_after:
            params["updated_after"] = updated_after
        if author_id is not None:
            params["author_id"] = author_id

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            return raw_list(gl, project_path(project, "issues"), params)

        return [
            await self.trust.issue(Issue.of(project, item))
            for item in await self.calls.read("issue.list", project, params, list_)
        ]

    async def list_ready(
        self, project: str, role: str, *, updated_after: str | None = None
    ) -> list[Issue]:
        """Issues waiting for ``role`` (one API call, filtered by the ready label)."""
        label = self.workflow.ready_state(role).label
        ready = await self.list_issues(project, labels=[label], updated_after=updated_after)
        if updated_after is None:  # the whole queue, not a slice of it
            metrics.READY_ISSUES.labels(role, project).set(len(ready))
        return ready

    async def transition(
        self, project: str, iid: int, target: str, *, expect: Collection[str] | None = None
    ) -> Issue:
        """Move the issue to ``target`` in ONE update: add its label, remove every other
        workflow label (so Free-tier GitLab ends with exactly one, and an issue found with
        two is repaired). With ``expect``, refuse (StaleState) unless the issue is in one
        of those states right before the update."""
        issue = await self.get_issue(project, iid)
        if expect is not None:
            state = read_state(self.workflow, issue.labels).state
            current = state.name if state else None
            if current not in expect:
                raise StaleState(issue, expect, current)
        change = label_change(self.workflow, issue.labels, target)
        if not change.add and not change.remove:
            return issue
        return await self.update_issue(
            project, iid, add_labels=change.add, remove_labels=change.remove
        )

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
        payload: dict[str, Any] = {}
        if add_labels:
            payload["add_labels"] = ",".join(add_labels)
        if remove_labels:
            payload["remove_labels"] = ",".join(remove_labels)
        if state_event:
            payload["state_event"] = state_event
        if description is not None:
            payload["description"] = description

        def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).issues.update(iid, data))

        data = await self.calls.write(
            "issue.update", f"{project}#{iid}", payload, update, text_fields=("description",)
        )
        if description is not None:  # as GitLab stores it, written by crewline just now
            self.trust.wrote(f"{project}#{iid}", str(data.get("description") or ""))
        issue = await self.trust.issue(Issue.of(project, data))
        self.own_writes.issue_updated(project, iid, issue.updated_at)
        self.issues.observe(issue)
        for listener in list(self.moved):
            listener(issue)
        return issue

    async def label_events(self, project: str, iid: int) -> list[LabelEvent]:
        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            path = project_path(project, "issues", iid, "resource_label_events")
            return raw_list(gl, path, {"per_page": PER_PAGE})

        events = await self.calls.read("issue.label_events", f"{project}#{iid}", {}, list_)
        return sorted((LabelEvent.of(e) for e in events), key=lambda e: e.id)

    async def blocked_by(self, project: str, iid: int) -> list[int]:
        """The iids of the issues in ``project`` linked as blocking this one ("is blocked by",
        seen from this issue). A "relates to" link is no dependency: it is mutual, so both
        issues would wait for each other."""

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            issue = gl.projects.get(project, lazy=True).issues.get(iid, lazy=True)
            return [dict(link.attributes) for link in issue.links.list(get_all=True)]

        linked = await self.calls.read("issue.links", f"{project}#{iid}", {}, list_)
        blockers = [item for item in linked if item.get("link_type") == "is_blocked_by"]
        if not blockers:
            return []
        here = await self.project_id(project)  # GitLab names a linked issue's project by id
        return [int(item["iid"]) for item in blockers if int(item.get("project_id", 0)) == here]

    async def member_access_level(self, project: str, username: str) -> int:
        """``username``'s effective access level on ``project`` (inherited membership and
        administrators included); 0 when the user is unknown or not a member."""

        def get(gl: gitlab.Gitlab) -> int:
            users = gl.users.list(username=username, get_all=False)
            if not users:
                return 0
            members = gl.projects.get(project, lazy=True).members_all
            try:
                return int(members.get(users[0].id).access_level)
            except gitlab.exceptions.GitlabGetError as error:
                if error.response_code == 404:
                    return 0
                raise

        return await self.calls.read("member.access_level", project, {"username": username}, get)

    async def note_awards(self, project: str, iid: int, note_id: int) -> list[Award]:
        """The award emoji on note ``note_id`` of issue ``project#iid``, oldest first."""

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            issue = gl.projects.get(project, lazy=True).issues.get(iid, lazy=True)
            note = issue.notes.get(note_id, lazy=True)
            return [dict(a.attributes) for a in note.awardemojis.list(get_all=True)]

        found = await self.calls.read("note.awards", f"{project}#{iid}", {"note": note_id}, list_)
        return [Award.of(item) for item in found]

    async def note_replies(self, project: str, iid: int, note_id: int) -> list[Note]:
        """The replies in the thread that note ``note_id`` of issue ``project#iid`` starts,
        oldest first (none when nobody replied)."""

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            issue = gl.projects.get(project, lazy=True).issues.get(iid, lazy=True)
            return [dict(d.attributes) for d in issue.discussions.list(get_all=True)]

        target = f"{project}#{iid}"
        threads = await self.calls.read("issue.discussions", target, {}, list_)
        for thread in threads:
            notes = thread.get("notes") or []
            if notes and int(notes[0].get("id", 0)) == note_id:
                # Through the same filter as every note read: a stranger's marker is removed.
                return await self.trust.notes(target, (Note.of(note) for note in notes[1:]))
        return []

    async def description_editor(self, project: str, iid: int) -> tuple[int, str] | None:
        """Who last edited the issue's description: the author of its newest "changed the
        description" system note (GitLab's REST issue has no such field), or None when the
        description was never edited. Newest first, so usually one page."""

        def find(gl: gitlab.Gitlab) -> tuple[int, str] | None:
            notes = _noteable(gl, project, "issue", iid).notes.list(
                iterator=True, per_page=PER_PAGE, sort="desc", order_by="created_at"
            )
            for note in notes:
                if note.attributes.get("system") and note.attributes.get("body") == EDITED:
                    author = note.attributes.get("author") or {}
                    return int(author.get("id") or 0), str(author.get("username") or "")
            return None

        return await self.calls.read("note.list", f"{project}#{iid}", {"edits": True}, find)

    # ------------------------------------------------------------ notes (issues and MRs)

    async def notes(self, project: str, iid: int, *, on: Noteable = "issue") -> list[Note]:
        """Every note on the issue (or MR), lowest id first."""

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            path = project_path(project, _COLLECTION[on], iid, "notes")
            return raw_list(
                gl, path, {"per_page": PER_PAGE, "sort": "asc", "order_by": "created_at"}
            )

        target = _target(project, on, iid)
        notes = await self.calls.read("note.list", target, {}, list_)
        return await self.trust.notes(
            target, sorted((Note.of(n) for n in notes), key=lambda n: n.id)
        )

    async def post_note(
        self, project: str, iid: int, body: str, *, on: Noteable = "issue", quoted: bool = False
    ) -> Note:
        """Post a note, exactly once even when GitLab's answer is lost: the note is found by
        its crewline marker (:mod:`forge.markers`) before any retry. A body without one gets a
        one-off marker, added as it is sent (the guard and the audit see the body as written).
        ``quoted``: the body quotes material (logs, test output, goal text); guard findings in
        it are redacted rather than refusing the note."""
        found_by = findable(body)

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> Note:
            sent = {**data, "body": found_by.sent(data["body"])}
            return Note.of(dict(_noteable(gl, project, on, iid).notes.create(sent).attributes))

        async def find_posted(_: dict[str, Any]) -> Note | None:
            return next(iter(await self._marked(project, iid, found_by.marker, on=on)), None)

        note = await self.calls.write(
            "note.create",
            _target(project, on, iid),
            {"body": body},
            create,
            text_fields=("body",),
            redact_fields=("body",) if quoted else (),
            find_existing=find_posted,
        )
        self.own_writes.note_written(note.id)
        return await self.trust.note(_target(project, on, iid), note)

    async def edit_note(
        self, project: str, iid: int, note_id: int, body: str, *, on: Noteable = "issue"
    ) -> Note:
        def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(_noteable(gl, project, on, iid).notes.update(note_id, data))

        target = f"{_target(project, on, iid)}/note/{note_id}"
        data = await self.calls.write(
            "note.edit", target, {"body": body}, update, text_fields=("body",)
        )
        self.own_writes.note_written(note_id)
        return await self.trust.note(_target(project, on, iid), Note.of(data))

    async def delete_note(
        self, project: str, iid: int, note_id: int, *, on: Noteable = "issue"
    ) -> None:
        """Delete a note; one already gone (a retry after a lost answer) is no error."""

        def delete(gl: gitlab.Gitlab, _: dict[str, Any]) -> None:
            _noteable(gl, project, on, iid).notes.delete(note_id)

        target = f"{_target(project, on, iid)}/note/{note_id}"
        with contextlib.suppress(ForgeNotFound):
            await self.calls.write("note.delete", target, {}, delete)

    async def remove_copies(self, project: str, iid: int, notes: Sequence[Note]) -> int:
        """Delete the later copies of keyed notes among ``notes`` (the issue's, as just
        read); returns how many."""
        copies = later_copies(notes)
        for copy in copies:
            await self.delete_note(project, iid, copy.id)
        return len(copies)

    async def find_note(
        self,
        project: str,
        iid: int,
        key: str,
        *,
        on: Noteable = "issue",
        known: Sequence[Note] | None = None,
    ) -> Note | None:
        """The note carrying ``key`` (the lowest id, should there ever be two); ``known``:
        the notes this step just read (from :meth:`notes`), instead of reading again."""
        marked = await self._marked(project, iid, note_marker(key), on=on, known=known)
        return next(iter(marked), None)

    async def _marked(
        self,
        project: str,
        iid: int,
        marker: str,
        *,
        on: Noteable,
        known: Sequence[Note] | None = None,
    ) -> list[Note]:
        """The notes whose body carries ``marker``, lowest id first."""
        notes = known if known is not None else await self.notes(project, iid, on=on)
        return sorted((note for note in notes if marker in note.body), key=lambda n: n.id)

    async def upsert_note(
        self,
        project: str,
        iid: int,
        key: str,
        body: str,
        *,
        on: Noteable = "issue",
        quoted: bool = False,
        known: Sequence[Note] | None = None,
    ) -> Note:
        """Find-or-create the note carrying ``key``: one copy whatever happens. Looked up
        before posting (a restart finds it; in ``known``, the notes this step just read,
        when given), before any retry of the post (a lost answer), and after posting (two
        hosts posting at once: the lowest id stays, later copies are deleted by whoever
        sees them)."""
        marker = note_marker(key)
        found = await self._marked(project, iid, marker, on=on, known=known)
        if not found:
            posted = await self.post_note(project, iid, f"{body}\n\n{marker}", on=on, quoted=quoted)
            found = await self._marked(project, iid, marker, on=on) or [posted]
        kept, *copies = found
        for copy in copies:
            if copy.author == kept.author:  # never someone else's note
                await self.delete_note(project, iid, copy.id, on=on)
        return kept


def _merge_states(workflow: Workflow) -> list[str]:
    """The states an issue waits in while its MR is open (a hand merge closes the issue)."""
    labels = []
    for kind, name in (("ready", "review"), ("ready", "qa"), ("gate", "merge")):
        with contextlib.suppress(UnknownState):
            state = workflow.ready_state(name) if kind == "ready" else workflow.gate_state("merge")
            labels.append(state.label)
    return labels


_COLLECTION: dict[Noteable, str] = {"issue": "issues", "mr": "merge_requests"}


def _noteable(gl: gitlab.Gitlab, project: str, on: Noteable, iid: int) -> Any:
    manager = gl.projects.get(project, lazy=True)
    return (manager.issues if on == "issue" else manager.mergerequests).get(iid, lazy=True)


def _target(project: str, on: Noteable, iid: int) -> str:
    return f"{project}{'#' if on == 'issue' else '!'}{iid}"
