-- tokenvault schema v4 (SQLite): the key ring. Data-encryption keys added by `tokenvault keys
-- rotate`, each wrapped (AES-256-GCM) under the master key with its id as associated data; the
-- newest seals new values, every one of them still opens what it sealed. Key 0, the master key's
-- own derived key, is not stored. migrations/postgresql/0004_encryption_keys.sql mirrors this file.

CREATE TABLE encryption_keys (
    id          INTEGER PRIMARY KEY,        -- 1, 2, 3, ...
    wrapped_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
