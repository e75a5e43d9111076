"""Settings: the small key-value store behind the pause flag and the poll cursors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database, SettingsStore
from storage.clock import iso_utc
from tests.support.storage import ManualClock, raw_connection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "kv.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(db: Database, clock: ManualClock) -> SettingsStore:
    return SettingsStore(db, clock)


async def test_a_missing_key_gives_the_default(settings: SettingsStore) -> None:
    assert await settings.get("paused") is None
    assert await settings.get("paused", "no") == "no"
    assert await settings.get_json("cursor:g/app") is None
    assert await settings.get_json("cursor:g/app", {"after": None}) == {"after": None}


async def test_set_overwrites_and_stamps_the_time(
    settings: SettingsStore, db: Database, clock: ManualClock
) -> None:
    await settings.set("paused", "yes")
    clock.advance(30)
    await settings.set("paused", "no")
    assert await settings.get("paused") == "no"
    with raw_connection(db.path) as raw:
        rows = raw.execute("SELECT key, value, updated_at FROM settings").fetchall()
    assert [tuple(row) for row in rows] == [("paused", "no", iso_utc(clock.now))]


async def test_an_empty_string_is_a_value_not_a_missing_key(settings: SettingsStore) -> None:
    await settings.set("note", "")
    assert await settings.get("note", "default") == ""


async def test_delete_reports_whether_there_was_a_value(settings: SettingsStore) -> None:
    await settings.set("paused", "yes")
    assert await settings.delete("paused") is True
    assert await settings.get("paused") is None
    assert await settings.delete("paused") is False


async def test_json_values_round_trip(settings: SettingsStore) -> None:
    cursor = {"updated_after": "2024-03-01T00:00:00Z", "ids": [1, 2], "note": "café ✓"}
    await settings.set_json("cursor:g/app", cursor)
    assert await settings.get_json("cursor:g/app") == cursor
    await settings.set_json("flag", False)
    assert await settings.get_json("flag", True) is False
    assert await settings.get("flag") == "false"


async def test_a_plain_text_value_read_as_json_says_how_to_read_it(
    settings: SettingsStore,
) -> None:
    await settings.set("paused", "yes please")
    with pytest.raises(ValueError, match=r"'paused' does not hold JSON .* read it with get"):
        await settings.get_json("paused")


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, object()])
async def test_set_json_refuses_what_json_cannot_hold(
    settings: SettingsStore, value: object
) -> None:
    with pytest.raises(ValueError, match="'k': value is not JSON-serialisable"):
        await settings.set_json("k", value)
    assert await settings.get("k") is None


async def test_set_refuses_an_empty_key_and_non_text_values(settings: SettingsStore) -> None:
    with pytest.raises(ValueError, match="setting key must be a non-empty string"):
        await settings.set(" ", "v")
    with pytest.raises(ValueError, match="takes a string value, got int; use set_json"):
        await settings.set("k", 5)  # type: ignore[arg-type]
    assert await settings.get("k") is None


async def test_settings_are_shared_by_connections_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        await SettingsStore(first).set("paused", "yes")
        assert await SettingsStore(second).get("paused") == "yes"
    finally:
        await first.close()
        await second.close()
    again = await Database.open(path)
    try:
        assert await SettingsStore(again).get("paused") == "yes"
    finally:
        await again.close()


async def test_concurrent_json_updates_lose_nothing(settings: SettingsStore) -> None:
    async def add(name: str) -> None:
        await settings.update_json("seen", lambda names: sorted({*names, name}), [])

    await asyncio.gather(*(add(f"t{n:02d}") for n in range(40)))
    assert await settings.get_json("seen") == [f"t{n:02d}" for n in range(40)]


async def test_a_failing_json_update_changes_nothing(settings: SettingsStore) -> None:
    await settings.set_json("seen", ["a"])

    def broken(names: list[str]) -> list[object]:
        return [*names, object()]

    with pytest.raises(ValueError, match="not JSON-serialisable"):
        await settings.update_json("seen", broken)
    assert await settings.get_json("seen") == ["a"]
    assert await settings.update_json("fresh", lambda n: n + 1, 0) == 1


async def test_keys_lists_the_names_under_a_prefix_taken_literally(settings: SettingsStore) -> None:
    for key in ("pending-note:b", "pending-note:a", "pending_note:c", "pendingXnote:d", "paused"):
        await settings.set(key, "x")
    assert await settings.keys("pending-note:") == ["pending-note:a", "pending-note:b"]
    assert await settings.keys("pending_") == ["pending_note:c"]  # `_` is no wildcard
    assert await settings.keys("nothing") == []
