"""Learnings: FTS5 search, most relevant first, per project / issue; any query text is safe."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import Database, LearningStore, RunStore
from storage.learnings import match_expression
from tests.support.storage import ManualClock, raw_connection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "learnings.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def learnings(db: Database, clock: ManualClock) -> LearningStore:
    return LearningStore(db, clock)


async def test_add_and_for_issue_oldest_first(
    learnings: LearningStore, db: Database, clock: ManualClock
) -> None:
    run = await RunStore(db, clock).start("g/app", 7, "dev", 1, "w")
    first = await learnings.add("g/app", 7, "failure", "  pytest -x hid the second failure  ")
    clock.advance(1)
    second = await learnings.add("g/app", 7, "decision", "use a lease per workspace", run.id)
    await learnings.add("g/app", 8, "remember", "another issue")
    found = await learnings.for_issue("g/app", 7)
    assert [(item.id, item.kind, item.text, item.run_id) for item in found] == [
        (first, "failure", "pytest -x hid the second failure", None),
        (second, "decision", "use a lease per workspace", run.id),
    ]
    assert found[1].created_at.timestamp() == clock.now


async def test_search_ranks_the_most_relevant_first(learnings: LearningStore) -> None:
    await learnings.add("g/app", 1, "remember", "The docs build is slow on Mondays.")
    both = await learnings.add(
        "g/app", 2, "failure", "Flaky timeout in the webhook test: raise the timeout."
    )
    once = await learnings.add(
        "g/app",
        3,
        "failure",
        "The release job was flaky after the runner upgrade; we pinned the image, "
        "rebuilt the cache, reran the pipeline and wrote down the image digest.",
    )
    await learnings.add("g/app", 4, "decision", "Keep merge requests small.")
    found = await learnings.search("flaky timeout")
    # Both words (one twice) beats one word in a long text; unrelated entries are not listed.
    assert [item.id for item in found] == [both, once]


async def test_a_rare_word_outranks_a_common_one(learnings: LearningStore) -> None:
    rare = await learnings.add("g/app", 9, "failure", "segfault in the parser")
    for iid in range(1, 6):  # added later: newer ids must not win on recency alone
        await learnings.add("g/app", iid, "remember", f"pipeline number {iid} was green")
    found = await learnings.search("pipeline segfault", limit=2)
    assert found[0].id == rare


async def test_search_filters_by_project_and_issue(learnings: LearningStore) -> None:
    app7 = await learnings.add("g/app", 7, "failure", "lease expired during the rebase")
    app8 = await learnings.add("g/app", 8, "failure", "lease renewed too late")
    lib = await learnings.add("g/lib", 7, "failure", "lease not released on crash")
    assert {item.id for item in await learnings.search("lease")} == {app7, app8, lib}
    assert {item.id for item in await learnings.search("lease", project="g/app")} == {app7, app8}
    assert [item.id for item in await learnings.search("lease", project="g/app", iid=7)] == [app7]
    assert await learnings.search("lease", project="g/none") == []
    with pytest.raises(ValueError, match="an iid is only meaningful within a project"):
        await learnings.search("lease", iid=7)


async def test_search_honours_the_limit(learnings: LearningStore) -> None:
    for iid in range(1, 8):
        await learnings.add("g/app", iid, "remember", f"cache key {iid}")
    assert len(await learnings.search("cache", limit=3)) == 3
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        await learnings.search("cache", limit=0)


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'unbalanced "quote',
        "it's",
        "AND",
        "OR NOT",
        "NEAR(lease",
        "lease*",
        "text:lease",
        "^lease",
        "(lease",
        "lease -rebase",
        "a + b",
        "{text}: x",
        "\x00",
        "日本語",
        "_",
    ],
)
async def test_odd_query_text_never_crashes(learnings: LearningStore, query: str) -> None:
    await learnings.add("g/app", 1, "remember", "lease and rebase: it's fine")
    found = await learnings.search(query)
    assert all(item.project == "g/app" for item in found)


async def test_operators_are_searched_as_words(learnings: LearningStore) -> None:
    with_and = await learnings.add("g/app", 1, "remember", "build and test")
    await learnings.add("g/app", 2, "remember", "build alone")
    near = await learnings.add("g/app", 3, "remember", "near the end")
    assert [item.id for item in await learnings.search("AND")] == [with_and]
    assert [item.id for item in await learnings.search("NEAR(")] == [near]


async def test_hyphens_quotes_and_case_do_not_hide_matches(learnings: LearningStore) -> None:
    race = await learnings.add("g/app", 1, "failure", "Race condition in the claim note")
    assert [item.id for item in await learnings.search("race-condition")] == [race]
    assert [item.id for item in await learnings.search('"RACE')] == [race]
    assert [item.id for item in await learnings.search("claim's")] == [race]


async def test_accents_and_non_ascii_words_match(learnings: LearningStore) -> None:
    cafe = await learnings.add("g/app", 1, "remember", "the café fixture is flaky")
    street = await learnings.add("g/app", 2, "remember", "Straße is not ASCII")
    assert [item.id for item in await learnings.search("cafe")] == [cafe]
    assert [item.id for item in await learnings.search("CAFÉ")] == [cafe]
    # casefold() would turn this into "strasse", which the index never holds.
    assert [item.id for item in await learnings.search("STRASSE Straße")] == [street]


@pytest.mark.parametrize("query", ["", "   ", "!!! ... ---", '""'])
async def test_a_query_without_words_finds_nothing(learnings: LearningStore, query: str) -> None:
    await learnings.add("g/app", 1, "remember", "anything at all")
    assert await learnings.search(query) == []


async def test_the_index_follows_edits_and_deletes(learnings: LearningStore, db: Database) -> None:
    entry = await learnings.add("g/app", 1, "remember", "old wording")
    await db.execute("UPDATE learnings SET text = 'new phrasing' WHERE id = ?", (entry,))
    assert await learnings.search("old") == []
    assert [item.id for item in await learnings.search("phrasing")] == [entry]
    await db.execute("DELETE FROM learnings WHERE id = ?", (entry,))
    assert await learnings.search("phrasing") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1, "failure", "t"), "project must be a non-empty string"),
        (("g/app", 0, "failure", "t"), "iid must be an integer >= 1"),
        (("g/app", 1, "Failure", "t"), "learning kind must be a short lower-case word"),
        (("g/app", 1, "a b", "t"), "learning kind must be a short lower-case word"),
        (("g/app", 1, "failure", "  "), "learning text must be a non-empty string"),
        (("g/app", 1, "failure", "t", 99), "refers to run 99, which does not exist"),
    ],
)
async def test_add_refuses_bad_input(
    learnings: LearningStore, args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await learnings.add(*args)  # type: ignore[arg-type]
    assert await learnings.for_issue("g/app", 1) == []


# The property below runs outside the event loop, against the real schema through sqlite3.


@pytest.fixture(scope="module")
def fts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("fts") / "fts.sqlite3"

    async def create() -> None:
        db = await Database.open(path)
        await LearningStore(db).add("g/app", 1, "remember", "lease rebase café 日本語 x²")
        await db.close()

    asyncio.run(create())
    with raw_connection(path) as raw:
        yield raw


@given(st.text(max_size=60))
def test_every_query_text_makes_a_valid_match_expression(
    fts: sqlite3.Connection, query: str
) -> None:
    expression = match_expression(query)
    if expression is None:
        assert not any(char.isalnum() or char == "_" for char in query)
        return
    fts.execute("SELECT rowid FROM learnings_fts WHERE learnings_fts MATCH ?", (expression,))
