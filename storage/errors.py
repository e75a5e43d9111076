"""The errors the storage layer raises; each message says what went wrong and what to do."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by ``storage``."""


class StorageBusyError(StorageError):
    """The database stayed locked by other writers beyond the busy timeout and our retries."""


class MigrationError(StorageError):
    """A migration file is malformed or failed to apply (nothing of it was kept)."""


class SchemaTooNewError(MigrationError):
    """The database was written by a newer crewline than this one."""


class RunNotFoundError(StorageError, LookupError):
    """No run has the given id."""


class RunFinishedError(StorageError):
    """The run already finished; it cannot be resumed, checkpointed or finished differently."""
