"""The review role's open threads, read from typed discussions (SPEC §12): only resolvable,
unresolved discussions count, with every note's author and the place on the diff."""

from __future__ import annotations

from typing import Any

from forge.mr_types import Discussion
from roles.review import Thread, unresolved


def note(note_id: int, who: str, body: str, **over: Any) -> dict[str, Any]:
    return {
        "id": note_id,
        "body": body,
        "author": {"id": note_id, "username": who},
        "resolvable": True,
        "resolved": False,
        **over,
    }


def test_only_open_threads_are_listed_with_their_place_and_every_note() -> None:
    position = {"new_path": "app.py", "old_path": "app.py", "new_line": 7, "old_line": None}
    found = [
        Discussion.of(
            {
                "id": "d1",
                "notes": [
                    note(1, "alice", "Rename x", position=position),
                    note(2, "bob", "Agreed"),
                ],
            }
        ),
        Discussion.of({"id": "d2", "notes": [note(3, "alice", "Done already", resolved=True)]}),
        Discussion.of({"id": "d3", "notes": [note(4, "carol", "Nice", resolvable=False)]}),
        Discussion.of({"id": "d4", "notes": [note(5, "dave", "And the docs?")]}),
    ]
    assert unresolved(found) == [
        Thread("d1", "@alice: Rename x\n\n@bob: Agreed", "alice", "app.py", 7),
        Thread("d4", "@dave: And the docs?", "dave", None, None),
    ]
