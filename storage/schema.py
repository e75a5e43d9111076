"""Schema migrations: ``storage/migrations/NNN_name.sql``, tracked with ``PRAGMA user_version``.

All pending migrations are applied in the caller's single transaction, so a failure leaves the
database exactly as it was (SQLite DDL is transactional). The files ship as package data and are
read with ``importlib.resources``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from storage.errors import MigrationError, SchemaTooNewError

if TYPE_CHECKING:
    from storage.db import Transaction

_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
# A COMMIT inside a migration would end our one transaction half-way; a BEGIN would fail anyway.
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(source: Traversable | Path | None = None) -> list[Migration]:
    """The migrations in ``source`` (default: the shipped ones), checked and ordered by version."""
    root: Traversable | Path = source if source is not None else files("storage") / "migrations"
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} is misnamed: expected NNN_name.sql with a "
                "three-digit version and a lower-case name, e.g. 002_add_index.sql"
            )
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    check_sequence(found)
    return found


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3 … with no gap or duplicate, or a database could skip one."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration {migration.version:03d}_{migration.name} is out of sequence: expected "
                f"version {expected:03d}; number migrations 001, 002, … without gaps or repeats"
            )


def split_statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT our transaction)."""
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statement = script[start : index + 1].strip()
            if _has_code(statement):
                _refuse_transaction_control(statement)
                statements.append(statement)
            start = index + 1
    if _has_code(script[start:]):
        raise MigrationError(
            f"unterminated SQL statement (missing ';'?): {script[start:].strip()[:120]!r}"
        )
    return statements


def _refuse_transaction_control(statement: str) -> None:
    first_word = _COMMENTS.sub(" ", statement).split(maxsplit=1)[0].rstrip(";").upper()
    if first_word in _TRANSACTION_CONTROL:
        raise MigrationError(
            f"migration statement {statement[:60]!r} controls the transaction itself; remove it: "
            "every pending migration already runs inside one transaction"
        )


def _has_code(text: str) -> bool:
    return bool(_COMMENTS.sub("", text).strip(" \t\r\n;"))


async def apply_migrations(tx: Transaction, migrations: Sequence[Migration], path: Path) -> int:
    """Bring the database to the newest version; return the version it is at afterwards."""
    check_sequence(migrations)
    row = await tx.fetchone("PRAGMA user_version")
    current = int(row[0]) if row else 0
    newest = migrations[-1].version if migrations else 0
    if current > newest:
        raise SchemaTooNewError(
            f"{path} has schema version {current}, but this crewline only knows versions up to "
            f"{newest}: it was written by a newer crewline. Upgrade crewline (pip install -U "
            "crewline), or point storage.path at another database"
        )
    # Parse every pending file before running any of them: a malformed one fails fast, by name.
    pending = [(migration, _statements_of(migration)) for migration in migrations[current:]]
    for migration, statements in pending:
        for statement in statements:
            try:
                await tx.execute(statement)
            except sqlite3.Error as exc:
                raise MigrationError(
                    f"{path}: migration {migration.version:03d}_{migration.name} failed ({exc}) "
                    f"in statement {statement[:120]!r}; nothing was applied, the database stays "
                    f"at version {current}"
                ) from exc
        # PRAGMA takes no parameters; the version is an int we parsed from a file name.
        await tx.execute(f"PRAGMA user_version = {int(migration.version)}")
    return max(current, newest)


def _statements_of(migration: Migration) -> list[str]:
    try:
        return split_statements(migration.sql)
    except MigrationError as exc:
        raise MigrationError(f"migration {migration.version:03d}_{migration.name}: {exc}") from exc
