"""aiosqlite storage: connection, migrations, leases, runs, audit, learnings, settings."""

from __future__ import annotations

from pathlib import Path

from storage.audit import AuditEntry, AuditLog, ChainReport, payload_digest, verify_chain
from storage.db import Database, StorageSettings, Transaction, Written
from storage.errors import (
    MigrationError,
    RunFinishedError,
    RunNotFoundError,
    SchemaTooNewError,
    StorageBusyError,
    StorageError,
)
from storage.kv import SettingsStore
from storage.learnings import Learning, LearningStore
from storage.leases import Lease, LeaseStore
from storage.outbox import Outbox, Outgoing, PostedCard, PostedCards
from storage.runs import Run, RunStatus, RunStore, Spend
from storage.schema import Migration, load_migrations

__all__ = [
    "AuditEntry",
    "AuditLog",
    "ChainReport",
    "Database",
    "Learning",
    "LearningStore",
    "Lease",
    "LeaseStore",
    "Migration",
    "MigrationError",
    "Outbox",
    "Outgoing",
    "PostedCard",
    "PostedCards",
    "Run",
    "RunFinishedError",
    "RunNotFoundError",
    "RunStatus",
    "RunStore",
    "SchemaTooNewError",
    "SettingsStore",
    "Spend",
    "Storage",
    "StorageBusyError",
    "StorageError",
    "StorageSettings",
    "Transaction",
    "Written",
    "load_migrations",
    "payload_digest",
    "verify_chain",
]


class Storage:
    """Every store over one migrated database. ``await Storage.open(...)``, then ``close()``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.leases = LeaseStore(db)
        self.runs = RunStore(db)
        self.audit = AuditLog(db)
        self.learnings = LearningStore(db)
        self.settings = SettingsStore(db)
        self.outbox = Outbox(db)
        self.cards = PostedCards(db)

    @classmethod
    async def open(cls, settings_or_path: StorageSettings | Path | str) -> Storage:
        if isinstance(settings_or_path, StorageSettings):
            settings = settings_or_path
        else:
            settings = StorageSettings(path=Path(settings_or_path))
        db = await Database.open(settings.path, busy_timeout_ms=settings.busy_timeout_ms)
        return cls(db)

    async def close(self) -> None:
        if not self.db.closed:
            await self.audit.flush_reads()
        await self.db.close()
