-- crewline schema version 4: the leases table as a b-tree keyed by the lease key alone.
--
-- A lease write used to change four b-trees (the rowid table, the key's unique index and the
-- two partial indexes by holder and by expiry) and so write four pages to the WAL per commit.
-- Nothing but `LeaseStore.held_by` and `LeaseStore.expired` (diagnostics) reads by holder or
-- expiry, and a scan of one row per key is cheap; a lease write now changes one page
-- (docs/decisions/0038).
CREATE TABLE leases_by_key (
    key        TEXT PRIMARY KEY,
    token      INTEGER NOT NULL CHECK (token >= 1),
    holder     TEXT,
    expires_at REAL,
    CHECK ((holder IS NULL) = (expires_at IS NULL))
) WITHOUT ROWID;
INSERT INTO leases_by_key (key, token, holder, expires_at)
    SELECT key, token, holder, expires_at FROM leases;
DROP TABLE leases;
ALTER TABLE leases_by_key RENAME TO leases;
