-- crewline schema version 3: what a surface (Discord) still has to send, and the cards it sent.
--
-- One row per message or edit to send, found again after a restart. ``key`` makes a request
-- idempotent (one card per issue, gate and revision; one pending status edit per issue,
-- whose payload a later transition replaces, raising ``version``). The sender deletes a row
-- only at the version it sent, so a replacement made while it was sending is kept.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    ref        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

-- Every approval card posted, so a card whose gate was decided elsewhere (in GitLab, by
-- another host) is found and closed: edited to say so, its buttons removed.
CREATE TABLE posted_cards (
    ref        TEXT NOT NULL,
    gate       TEXT NOT NULL,
    revision   TEXT NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    open       INTEGER NOT NULL DEFAULT 1 CHECK (open IN (0, 1)),
    posted_at  TEXT NOT NULL,
    PRIMARY KEY (ref, gate, revision)
);
CREATE INDEX posted_cards_open ON posted_cards (ref) WHERE open = 1;
