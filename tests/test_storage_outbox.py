"""The outbox: an entry per key, kept across a restart; a replaced entry is not lost when the
sender finishes the version it read; posted cards stay open until closed."""

from __future__ import annotations

from pathlib import Path

from storage import Outbox, PostedCard, Storage


async def test_keys_are_idempotent_and_a_replacement_survives_a_send_in_flight(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite3"
    storage = await Storage.open(path)
    try:
        box = storage.outbox
        assert await box.put("card:p#1:plan-review:7", "card", "p#1", {"rev": "7"})
        assert not await box.put("card:p#1:plan-review:7", "card", "p#1", {"rev": "other"})
        assert await box.put("status:p#1", "status", "p#1", {"state": "pm-running"}, replace=True)
        first = await box.first()
        assert first is not None and first.kind == "card" and first.payload == {"rev": "7"}
        assert await box.sent(first)

        reading = await box.first()  # the sender reads the status edit ...
        assert reading is not None and reading.payload == {"state": "pm-running"}
        # ... and a later transition replaces it while the edit is on its way.
        assert not await box.put(
            "status:p#1", "status", "p#1", {"state": "plan-review"}, replace=True
        )
        assert not await box.sent(reading)  # kept: the newest state is sent next
        newest = await box.first()
        assert newest is not None and newest.id == reading.id
        assert newest.payload == {"state": "plan-review"} and newest.version == 2
        await box.put("detail:p#1:x", "detail", "p#1", {"n": 1})
    finally:
        await storage.close()

    reopened = await Storage.open(path)  # a restart: what was queued is still there, in order
    try:
        assert isinstance(reopened.outbox, Outbox) and await reopened.outbox.count() == 2
        entry = await reopened.outbox.first()
        assert entry is not None and entry.payload == {"state": "plan-review"}
        card = PostedCard("p#1", "plan-review", "7", 600, 42)
        await reopened.cards.add(card)
        await reopened.cards.add(card)  # recorded once
        assert await reopened.cards.posted("p#1", "plan-review", "7")
        assert await reopened.cards.open("p#1") == [card]
        await reopened.cards.close(card)
        assert await reopened.cards.open("p#1") == []
        assert await reopened.cards.posted("p#1", "plan-review", "7")
    finally:
        await reopened.close()
