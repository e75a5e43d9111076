-- crewline schema version 2: audit retention.
--
-- Reads are recorded as one row per operation per minute: ``count`` says how many calls the row
-- stands for (1 for every write and decision, which keep a row each). The row hash covers
-- ``count`` only when it is not 1, so the hashes of rows written before this version still hold.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);

-- Pruning old rows keeps the chain verifiable: each prune leaves an anchor naming the newest
-- pruned row and its hash, which the oldest remaining row's prev_hash must equal.
CREATE TABLE audit_anchor (
    id          INTEGER PRIMARY KEY,
    last_id     INTEGER NOT NULL CHECK (last_id >= 1),
    last_hash   TEXT NOT NULL,
    pruned_rows INTEGER NOT NULL CHECK (pruned_rows >= 1),
    before      TEXT NOT NULL,
    at          TEXT NOT NULL
);

CREATE TRIGGER audit_anchor_refuses_update BEFORE UPDATE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_anchor_refuses_delete BEFORE DELETE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only: DELETE refused');
END;

-- A permit row exists only inside the transaction of ``crewline audit prune``: DELETE is refused
-- for any row the permit does not cover.
CREATE TABLE audit_prune_permit (up_to INTEGER NOT NULL);

DROP TRIGGER audit_refuses_delete;
CREATE TRIGGER audit_refuses_delete BEFORE DELETE ON audit
WHEN NOT EXISTS (SELECT 1 FROM audit_prune_permit WHERE OLD.id <= up_to)
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only: DELETE refused');
END;
