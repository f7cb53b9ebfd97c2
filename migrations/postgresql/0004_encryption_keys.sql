-- tokenvault schema v4 (PostgreSQL): the key ring, mirroring migrations/sqlite/0004_encryption_keys.sql.
-- Data-encryption keys added by `tokenvault keys rotate`, each wrapped (AES-256-GCM) under the
-- master key with its id as associated data. Key 0, the master key's own derived key, is not stored.

CREATE TABLE encryption_keys (
    id          BIGINT PRIMARY KEY,         -- 1, 2, 3, ...
    wrapped_key BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
