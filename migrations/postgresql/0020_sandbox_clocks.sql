-- The clocks of test accounts (issue 18, part 3): how far an account's "now" lies from real time
-- (`PUT …/sandbox/clock`). An account without a row runs on real time. Every moment stored for
-- the account is in its own time; the webhook worker and the pruning of finished deliveries
-- compare with real time plus this offset.
-- migrations/sqlite/0020_sandbox_clocks.sql is the same for SQLite.
CREATE TABLE sandbox_clocks (
    account_id  TEXT PRIMARY KEY,
    offset_ms   BIGINT  NOT NULL,     -- account time minus real time
    updated_at  BIGINT  NOT NULL,     -- Unix ms, real time
    updated_by  TEXT NOT NULL
);

-- A journal entry's `recorded_at` is the account's time; the age bound is on real time
-- (`received_at`), so that moving an account's clock neither empties its journal nor keeps it.
ALTER TABLE request_journal ADD COLUMN received_at BIGINT NOT NULL DEFAULT 0;
UPDATE request_journal SET received_at = recorded_at;
DROP INDEX request_journal_by_time;
CREATE INDEX request_journal_by_received ON request_journal (received_at);
