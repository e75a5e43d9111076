"""The note operations of the gateway (issues and MRs): read, post exactly once, edit,
delete, find by key, find-or-create. A base of forge.gateway.Gateway; every call audited,
every write screened by the guard, every note read through the trust filter (0015, 0017)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import gitlab

from forge.calls import AuditedCalls
from forge.client import ForgeNotFound
from forge.markers import findable, later_copies, note_marker
from forge.own_writes import OwnWrites
from forge.pending_notes import Noteable as Noteable
from forge.pending_notes import PendingNote, PendingNotes
from forge.raw_http import project_path, raw_list, raw_post, raw_put
from forge.sink import seal
from forge.trust import Trust
from forge.types import Award, Note

PER_PAGE = 100
EDITED = "changed the description"  # GitLab's system note when an issue's description is edited


class NoteOps:
    """Notes on issues and MRs (a base of Gateway)."""

    calls: AuditedCalls
    trust: Trust
    own_writes: OwnWrites
    pending_notes: PendingNotes  # copy checks of keyed notes owed after a crash

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
            path = _notes_path(project, on, iid)
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
            return Note.of(raw_post(gl, _notes_path(project, on, iid), sent))

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

    def _note_editor(
        self, project: str, on: Noteable, iid: int, note_id: int
    ) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
        """The one raw write behind :meth:`edit_note` (an in-memory fake swaps it)."""
        return lambda gl, data: raw_put(gl, _notes_path(project, on, iid, note_id), data)

    async def edit_note(
        self, project: str, iid: int, note_id: int, body: str, *, on: Noteable = "issue"
    ) -> Note:
        update = self._note_editor(project, on, iid, note_id)
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
        if found:
            return await self._keep_first(project, iid, found, on=on)
        # Owed before the post: a restart finishes the check a kill interrupts.
        owed = PendingNote(project, on, iid, key)
        await self.pending_notes.begin(owed)
        try:
            sent = f"{body}\n\n{seal(marker)}"
            posted = await self.post_note(project, iid, sent, on=on, quoted=quoted)
            found = await self._marked(project, iid, marker, on=on) or [posted]
            kept = await self._keep_first(project, iid, found, on=on)
        except BaseException:
            self.pending_notes.abandon(owed)  # still owed: the janitor finishes it
            raise
        await self.pending_notes.end(owed)
        return kept

    async def _keep_first(
        self, project: str, iid: int, found: Sequence[Note], *, on: Noteable
    ) -> Note:
        """The lowest of the notes carrying one key; later copies by its author are deleted."""
        kept, *copies = found
        for copy in copies:
            if copy.author == kept.author:  # never someone else's note
                await self.delete_note(project, iid, copy.id, on=on)
        return kept

    async def finish_pending_notes(self) -> list[str]:
        """Run the copy checks an earlier life of this host (or a failed step) left owed;
        returns the notes checked (``project#iid key``). One that fails stays owed."""

        async def check(owed: PendingNote) -> None:
            try:
                found = await self._marked(
                    owed.project, owed.iid, note_marker(owed.key), on=owed.on
                )
            except ForgeNotFound:  # the issue or MR is gone: nothing left to check
                return
            if found:
                await self._keep_first(owed.project, owed.iid, found, on=owed.on)

        return [owed.ref() for owed in await self.pending_notes.finish(check)]


_COLLECTION: dict[Noteable, str] = {"issue": "issues", "mr": "merge_requests"}


def _noteable(gl: gitlab.Gitlab, project: str, on: Noteable, iid: int) -> Any:
    manager = gl.projects.get(project, lazy=True)
    return (manager.issues if on == "issue" else manager.mergerequests).get(iid, lazy=True)


def _notes_path(project: str, on: Noteable, iid: int, *note: int) -> str:
    return project_path(project, _COLLECTION[on], iid, "notes", *note)


def _target(project: str, on: Noteable, iid: int) -> str:
    return f"{project}{'#' if on == 'issue' else '!'}{iid}"
