-- tokenvault schema v3 (SQLite): idempotency keys (`Idempotency-Key` on POST and DELETE).
-- One row per caller (account, client id) and key. `in_progress` rows are leased until
-- `locked_until` (a request that died mid-way frees its key when the lease runs out); `done`
-- rows hold the response to replay: status, the headers that matter (a JSON array of
-- [name, value] pairs) and the body, sealed with the card-token cipher (bodies may carry card
-- tokens or webhook secrets). `fingerprint` is a keyed HMAC of the request, never the request.
-- Rows past `expires_at` (24 h after first use) count as absent and are purged as new keys arrive.
-- migrations/postgresql/0003_idempotency.sql mirrors this file.

CREATE TABLE idempotency_keys (
    account_id      TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    attempt         TEXT NOT NULL,          -- UUID of the request holding (or that held) the key
    state           TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    created_at      INTEGER NOT NULL,
    locked_until    INTEGER,                -- in_progress only
    expires_at      INTEGER NOT NULL,
    status          INTEGER,                -- done only
    headers         TEXT,                   -- done only
    body            BLOB,                   -- done only, sealed
    PRIMARY KEY (account_id, client_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
