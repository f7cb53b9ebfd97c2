-- The request journal of test accounts (`GET /v1/accounts/{aid}/sandbox/requests`): one row per
-- API request, secrets redacted before they are written. Diagnostic data, bounded by count per
-- account and by age, and not part of exports or backups.
-- migrations/postgresql/0018_request_journal.sql mirrors this file.
CREATE TABLE request_journal (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    account_id      TEXT NOT NULL,
    recorded_at     INTEGER NOT NULL,     -- Unix milliseconds
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    query           TEXT,
    status          INTEGER NOT NULL,
    latency_ms      INTEGER NOT NULL,
    request_id      TEXT,
    client_id       TEXT,
    idempotency_key TEXT,
    request_headers TEXT,                 -- JSON object, credentials redacted
    request_body    TEXT,                 -- redacted
    response_body   TEXT,                 -- redacted
    fault           TEXT                  -- set when a sandbox fault made the request fail
);
-- An account's entries, newest first; the per-account count bound.
CREATE INDEX request_journal_by_account ON request_journal (account_id, seq);
-- The age bound.
CREATE INDEX request_journal_by_time ON request_journal (recorded_at);
