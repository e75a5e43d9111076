"""Typed values of a merge request's review data: its diff refs, file diffs and
discussions (notes, diff positions, resolvable/resolved), each read from GitLab's JSON in
one place (:mod:`forge.fields` names the field when GitLab answers something unexpected).

Shapes: ``GET /projects/:id/merge_requests/:iid/discussions`` (a discussion is ``id`` and
``notes``; a note has ``resolvable``, ``resolved`` and, on a diff, ``position`` with
``base_sha``/``start_sha``/``head_sha``, ``old_path``/``new_path`` and
``old_line``/``new_line``), ``GET .../merge_requests/:iid/diffs`` and the MR's
``diff_refs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forge.fields import (
    flag,
    listed,
    nested,
    record,
    required_text,
    text,
    username,
    whole,
    whole_or_none,
)


@dataclass(frozen=True)
class DiffRefs:
    """The three commits a diff position is anchored to."""

    base_sha: str
    head_sha: str
    start_sha: str

    @classmethod
    def of(cls, data: Any) -> DiffRefs | None:
        """None where GitLab has no refs yet (an MR whose diff is still being prepared)."""
        if data is None:
            return None
        refs = record(data, "merge request's diff_refs")
        base = text(refs, "base_sha", "diff_refs")
        head = text(refs, "head_sha", "diff_refs")
        if not base or not head:
            return None
        return cls(base, head, text(refs, "start_sha", "diff_refs") or base)


@dataclass(frozen=True)
class Position:
    """Where a diff note sits: a file and a line on the new or old side of the diff."""

    base_sha: str
    start_sha: str
    head_sha: str
    old_path: str
    new_path: str
    old_line: int | None
    new_line: int | None
    position_type: str = "text"

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Position:
        kind = "note's position"
        return cls(
            base_sha=text(data, "base_sha", kind),
            start_sha=text(data, "start_sha", kind),
            head_sha=text(data, "head_sha", kind),
            old_path=text(data, "old_path", kind),
            new_path=text(data, "new_path", kind),
            old_line=whole_or_none(data, "old_line", kind),
            new_line=whole_or_none(data, "new_line", kind),
            position_type=text(data, "position_type", kind) or "text",
        )

    @classmethod
    def on_new_line(cls, refs: DiffRefs, path: str, line: int) -> Position:
        """A line of ``path`` as the MR's head has it (an added or changed line)."""
        return cls(refs.base_sha, refs.start_sha, refs.head_sha, path, path, None, line)

    def payload(self) -> dict[str, Any]:
        """The ``position`` GitLab's create-discussion call takes."""
        sent: dict[str, Any] = {
            "position_type": self.position_type,
            "base_sha": self.base_sha,
            "start_sha": self.start_sha,
            "head_sha": self.head_sha,
            "old_path": self.old_path,
            "new_path": self.new_path,
        }
        if self.new_line is not None:
            sent["new_line"] = self.new_line
        if self.old_line is not None:
            sent["old_line"] = self.old_line
        return sent


@dataclass(frozen=True)
class DiscussionNote:
    id: int
    body: str
    author: str
    author_id: int
    created_at: str
    system: bool
    resolvable: bool
    resolved: bool
    position: Position | None

    @classmethod
    def of(cls, data: Any) -> DiscussionNote:
        kind = "discussion note"
        note = record(data, kind)
        author, author_id = username(note, "author", kind)
        position = nested(note, "position", kind)
        return cls(
            id=whole(note, "id", kind),
            body=text(note, "body", kind),
            author=author,
            author_id=author_id,
            created_at=text(note, "created_at", kind),
            system=flag(note, "system", kind),
            resolvable=flag(note, "resolvable", kind),
            resolved=flag(note, "resolved", kind),
            position=Position.of(position) if position is not None else None,
        )


@dataclass(frozen=True)
class Discussion:
    """A thread of notes; GitLab keeps its resolvable/resolved state on its notes."""

    id: str
    notes: tuple[DiscussionNote, ...]

    @classmethod
    def of(cls, data: Any) -> Discussion:
        found = record(data, "discussion")
        return cls(
            id=required_text(found, "id", "discussion"),
            notes=tuple(DiscussionNote.of(note) for note in listed(found, "notes", "discussion")),
        )

    @property
    def first(self) -> DiscussionNote | None:
        return self.notes[0] if self.notes else None

    @property
    def unresolved(self) -> bool:
        """Open for someone to act on: resolvable and not resolved yet."""
        first = self.first
        return first is not None and first.resolvable and not first.resolved

    def carries(self, marker: str) -> bool:
        return any(marker in note.body for note in self.notes)


@dataclass(frozen=True)
class FileDiff:
    """One file of a merge request's diff."""

    old_path: str
    new_path: str
    diff: str
    new_file: bool
    renamed_file: bool
    deleted_file: bool

    @classmethod
    def of(cls, data: Any) -> FileDiff:
        kind = "merge request diff"
        found = record(data, kind)
        return cls(
            old_path=text(found, "old_path", kind),
            new_path=text(found, "new_path", kind),
            diff=text(found, "diff", kind),
            new_file=flag(found, "new_file", kind),
            renamed_file=flag(found, "renamed_file", kind),
            deleted_file=flag(found, "deleted_file", kind),
        )
