"""Learnings (what failed, what was decided, what to remember), searchable with FTS5.

The index ``learnings_fts`` is an *external-content* FTS5 table over ``learnings.text``: the text
is stored once, and triggers (see ``001_initial.sql``) keep the index in step with every insert,
update and delete. Search never hands the user's text to FTS5 as query syntax: it is cut into
words, each word becomes a quoted phrase, and the phrases are OR-ed, so ``"``, ``*``, ``NEAR(``,
``OR`` or ``-`` are just text. bm25 ranks entries that match more (and rarer) words first.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.checks import require_int, require_text
from storage.clock import Clock, iso_utc, parse_iso
from storage.db import Database, Transaction

_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_WORD = re.compile(r"\w+")
_MAX_QUERY_WORDS = 32  # a pasted log must not become a query with thousands of phrases


@dataclass(frozen=True)
class Learning:
    id: int
    project: str
    iid: int
    kind: str
    text: str
    run_id: int | None
    created_at: datetime


def match_expression(query: str) -> str | None:
    """The safe FTS5 MATCH expression for free text, or ``None`` when it has no words."""
    # Case is left to FTS5's own folding: str.casefold() turns "Straße" into "strasse", which
    # unicode61 never produces, so the stored word would not be found. lower() only dedupes.
    unique: dict[str, str] = {}
    for word in _WORD.findall(query):
        unique.setdefault(word.lower(), word)
    words = list(unique.values())
    if not words:
        return None
    # A \w+ word holds no double quote, so wrapping it in quotes always makes a valid phrase.
    return " OR ".join(f'"{word}"' for word in words[:_MAX_QUERY_WORDS])


class LearningStore:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self, project: str, iid: int, kind: str, text: str, run_id: int | None = None
    ) -> int:
        """Store a learning; return its id."""
        _require_learning(project, iid, kind, text)
        async with self._db.transaction() as tx:
            if run_id is not None:
                known = await tx.fetchone("SELECT 1 FROM runs WHERE id = ?", (run_id,))
                if known is None:
                    raise ValueError(
                        f"learning refers to run {run_id}, which does not exist; "
                        "pass the id of a started run, or run_id=None"
                    )
            return await self._insert(tx, project, iid, kind, text, run_id)

    async def add_once(self, project: str, iid: int, kind: str, text: str) -> bool:
        """Store a learning read from GitLab unless the issue already has the same one (this
        host recorded it, or indexed it before); True when it was new."""
        _require_learning(project, iid, kind, text)
        async with self._db.transaction() as tx:
            known = await tx.fetchone(
                "SELECT 1 FROM learnings WHERE project = ? AND iid = ? AND kind = ? AND text = ?",
                (project, iid, kind, text.strip()),
            )
            if known is not None:
                return False
            await self._insert(tx, project, iid, kind, text, None)
        return True

    async def _insert(
        self, tx: Transaction, project: str, iid: int, kind: str, text: str, run_id: int | None
    ) -> int:
        written = await tx.execute(
            """
            INSERT INTO learnings (project, iid, kind, text, run_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            (project, iid, kind, text.strip(), run_id, iso_utc(self._clock())),
        )
        assert written.lastrowid is not None
        return written.lastrowid

    async def search(
        self, query: str, *, project: str | None = None, iid: int | None = None, limit: int = 5
    ) -> list[Learning]:
        """The learnings most relevant to ``query`` (bm25), best first; ``[]`` for no words.

        ``project`` (and ``iid``) narrow the search to one project (and one of its issues).
        """
        if iid is not None and project is None:
            raise ValueError("an iid is only meaningful within a project; pass project= as well")
        require_int("limit", limit, minimum=1)
        expression = match_expression(query)
        if expression is None:
            return []
        sql = """
            SELECT l.* FROM learnings_fts JOIN learnings AS l ON l.id = learnings_fts.rowid
            WHERE learnings_fts MATCH ?
        """
        params: list[Any] = [expression]
        if project is not None:
            sql += " AND l.project = ?"
            params.append(project)
        if iid is not None:
            sql += " AND l.iid = ?"
            params.append(iid)
        sql += " ORDER BY bm25(learnings_fts), l.id DESC LIMIT ?"
        params.append(limit)
        rows = await self._db.fetchall(sql, params)
        return [_learning(row) for row in rows]

    async def for_issue(self, project: str, iid: int) -> list[Learning]:
        """Every learning recorded for one issue, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM learnings WHERE project = ? AND iid = ? ORDER BY id", (project, iid)
        )
        return [_learning(row) for row in rows]


def _require_learning(project: str, iid: int, kind: object, text: str) -> None:
    require_text("project", project)
    require_int("iid", iid, minimum=1)
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(
            f"learning kind must be a short lower-case word such as 'failure', 'decision' "
            f"or 'remember', got {kind!r}"
        )
    require_text("learning text", text)


def _learning(row: Any) -> Learning:
    run_id = row["run_id"]
    return Learning(
        id=int(row["id"]),
        project=row["project"],
        iid=int(row["iid"]),
        kind=row["kind"],
        text=row["text"],
        run_id=int(run_id) if run_id is not None else None,
        created_at=parse_iso(row["created_at"]),
    )
