"""``crewline audit prune --before DATE``: the command around :func:`storage.audit_prune`."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from storage import Database, verify_chain
from storage.audit_prune import PruneReport, prune_audit
from storage.errors import StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_before(text: str) -> datetime:
    """An ISO date or time; UTC unless it names its zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(
            f"--before {text!r} is not an ISO date or time ({error}); e.g. 2026-09-01 or "
            "2026-09-01T12:00:00+00:00"
        ) from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_prune(db: Path, before_text: str) -> int:
    try:
        before = parse_before(before_text)
    except ValueError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if before > datetime.now(UTC):
        print(f"--before {before.isoformat()} is in the future; nothing may be pruned that "
              "has not happened yet", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        report = asyncio.run(_prune(db, before))
        chain = verify_chain(db)
    except StorageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if report.last_id is None:
        print(f"nothing to prune before {before.isoformat()}: {report.kept_rows} rows kept")
    else:
        print(
            f"pruned {report.pruned_rows} audit rows (up to row {report.last_id}) written "
            f"before {before.isoformat()}; {report.kept_rows} rows kept"
        )
    if not chain.ok:
        print(f"audit chain BROKEN at row {chain.first_bad_id}: {chain.reason} ({db})")
        return EXIT_FAILED
    print(f"audit chain intact: {chain.rows} rows verified from the anchor")
    return EXIT_OK


async def _prune(db_path: Path, before: datetime) -> PruneReport:
    db = await Database.open(db_path)
    try:
        return await prune_audit(db, before, who=f"operator:{getpass.getuser()}")
    finally:
        await db.close()
