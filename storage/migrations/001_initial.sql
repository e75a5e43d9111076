-- crewline schema version 1: leases, runs and checkpoints, usage, audit, learnings, settings.
-- Timestamps are ISO-8601 UTC text of fixed width (microseconds, +00:00), so they compare as text,
-- except lease expiry which is a float of the lease clock (seconds since the epoch).

-- One row per lease key, ever. The row outlives release (holder and expires_at become NULL) so
-- that the fencing token keeps increasing across releases and takeovers and is never reused.
CREATE TABLE leases (
    key        TEXT PRIMARY KEY,
    token      INTEGER NOT NULL CHECK (token >= 1),
    holder     TEXT,
    expires_at REAL,
    CHECK ((holder IS NULL) = (expires_at IS NULL))
);
CREATE INDEX leases_by_holder ON leases (holder) WHERE holder IS NOT NULL;
CREATE INDEX leases_by_expiry ON leases (expires_at) WHERE holder IS NOT NULL;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    project     TEXT NOT NULL,
    iid         INTEGER NOT NULL,
    stage       TEXT NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    worker      TEXT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'blocked', 'abandoned')),
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT,
    detail      TEXT,
    tokens_in   INTEGER NOT NULL DEFAULT 0 CHECK (tokens_in >= 0),
    tokens_out  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_out >= 0),
    cost_usd    REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    session_id  TEXT,
    UNIQUE (project, iid, stage, attempt),
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_by_issue ON runs (project, iid, id);
CREATE INDEX runs_active ON runs (id) WHERE status = 'running';

-- The id orders a run's steps as they finished; a step is recorded once (first write wins).
CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    result_json TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (run_id, step)
);

-- A ledger of agent usage, so spend can be summed over any window (a run may span midnight);
-- runs.tokens_in/tokens_out/cost_usd are the per-run totals of the same entries.
CREATE TABLE usage (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    recorded_at TEXT NOT NULL,
    tokens_in   INTEGER NOT NULL CHECK (tokens_in >= 0),
    tokens_out  INTEGER NOT NULL CHECK (tokens_out >= 0),
    cost_usd    REAL NOT NULL CHECK (cost_usd >= 0)
);
CREATE INDEX usage_by_time ON usage (recorded_at);
CREATE INDEX usage_by_run ON usage (run_id);

-- Append-only and hash-chained: hash = sha256(prev_hash || canonical JSON of the other fields).
-- The payload itself is never stored (it may hold secrets), only its digest.
CREATE TABLE audit (
    id             INTEGER PRIMARY KEY,
    at             TEXT NOT NULL,
    who            TEXT NOT NULL,
    what           TEXT NOT NULL,
    target         TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_by_target ON audit (target, id);

CREATE TRIGGER audit_refuses_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_refuses_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only: DELETE refused');
END;

CREATE TABLE learnings (
    id         INTEGER PRIMARY KEY,
    project    TEXT NOT NULL,
    iid        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    text       TEXT NOT NULL,
    run_id     INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX learnings_by_project ON learnings (project, id);

-- External-content FTS5 index: the text is stored once (in learnings) and the index is kept in
-- sync by the triggers below; remove_diacritics lets "cafe" find "café".
CREATE VIRTUAL TABLE learnings_fts USING fts5 (
    text,
    content = 'learnings',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER learnings_fts_insert AFTER INSERT ON learnings
BEGIN
    INSERT INTO learnings_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER learnings_fts_delete AFTER DELETE ON learnings
BEGIN
    INSERT INTO learnings_fts (learnings_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER learnings_fts_update AFTER UPDATE OF text ON learnings
BEGIN
    INSERT INTO learnings_fts (learnings_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO learnings_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
