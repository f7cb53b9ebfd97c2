-- tokenvault schema v3 (PostgreSQL), mirroring migrations/sqlite/0003_idempotency.sql:
-- idempotency keys (`Idempotency-Key` on POST and DELETE). One row per caller (account, client
-- id) and key; concurrent first uses of one key meet on the primary key (INSERT … ON CONFLICT DO
-- NOTHING, then SELECT … FOR UPDATE), so exactly one of them runs the request.

CREATE TABLE idempotency_keys (
    account_id      TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    attempt         TEXT NOT NULL,          -- UUID of the request holding (or that held) the key
    state           TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    created_at      BIGINT NOT NULL,
    locked_until    BIGINT,                 -- in_progress only
    expires_at      BIGINT NOT NULL,
    status          INTEGER,                -- done only
    headers         TEXT,                   -- done only
    body            BYTEA,                  -- done only, sealed
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (account_id, client_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
