-- Faults on demand for test accounts (issue 18, part 2): rules that make matching requests fail
-- on purpose. Kept in the database so that every instance on one database applies them, and so
-- that "the next N matches" and a seeded probability's sequence are counted once across all of
-- them (`remaining`, `matched`, updated atomically per matching request).
-- migrations/sqlite/0019_sandbox_faults.sql is the same for SQLite.
CREATE TABLE sandbox_faults (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    account_id  TEXT NOT NULL,
    method      TEXT,                 -- upper-case; NULL matches every method
    path        TEXT NOT NULL,        -- a pattern: * within a segment, ** for any segments
    client_id   TEXT,                 -- NULL matches every client
    effect      TEXT NOT NULL,        -- JSON: {"type": "status" | "delay" | "drop", ...}
    frequency   TEXT NOT NULL,        -- JSON: {"type": "always" | "times" | "probability", ...}
    remaining   BIGINT,               -- faults left of a "times" rule; NULL for the others
    matched     BIGINT NOT NULL DEFAULT 0,
    until       BIGINT NOT NULL,      -- Unix ms; the rule applies before this moment
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
-- An account's rules in the order they were added (the oldest that fires decides).
CREATE INDEX sandbox_faults_by_account ON sandbox_faults (account_id, seq);
