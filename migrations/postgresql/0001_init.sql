-- tokenvault schema v1 (PostgreSQL), mirroring migrations/sqlite/0001_init.sql table for table
-- and column for column. Times are Unix milliseconds (BIGINT); `seq` is the store's strictly
-- increasing acceptance order, used for keyset paging. JSON is kept as TEXT, not jsonb: jsonb
-- reorders keys, and clients must get back exactly what they sent. Uniqueness lives in
-- constraints and partial unique indexes so that many instances on one database stay correct;
-- the store maps violations to friendly messages by constraint name.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,              -- space-separated
    created_at  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,             -- PKCS#8 DER
    public_key  BYTEA NOT NULL,             -- raw 32 bytes
    created_at  BIGINT NOT NULL
);

CREATE TABLE customers (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL CONSTRAINT customers_id_key UNIQUE,
    account_id    TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    customer_type TEXT NOT NULL,
    email_key     TEXT,
    phone_number  TEXT,
    attributes    TEXT NOT NULL,            -- JSON object, key order as sent
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT,
    deleted_by    TEXT
);
CREATE UNIQUE INDEX customers_live_customer_id ON customers (account_id, customer_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX customers_live_email ON customers (account_id, customer_type, email_key) WHERE deleted_at IS NULL AND email_key IS NOT NULL;
CREATE UNIQUE INDEX customers_live_phone ON customers (account_id, phone_number) WHERE deleted_at IS NULL AND phone_number IS NOT NULL;
CREATE INDEX customers_by_account ON customers (account_id, seq);

CREATE TABLE customer_tokens (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL CONSTRAINT customer_tokens_id_key UNIQUE,
    account_id   TEXT NOT NULL,
    customer_seq BIGINT NOT NULL REFERENCES customers (seq),
    token_id     TEXT NOT NULL,
    token_type   TEXT NOT NULL,
    value        TEXT NOT NULL,
    metadata     TEXT,                      -- JSON object or NULL
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT,
    deleted_by   TEXT
);
CREATE UNIQUE INDEX customer_tokens_live_token_id ON customer_tokens (customer_seq, token_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX customer_tokens_live_type_value ON customer_tokens (account_id, token_type, value) WHERE deleted_at IS NULL;
CREATE INDEX customer_tokens_by_customer ON customer_tokens (customer_seq, seq);
CREATE INDEX customer_tokens_by_customer_type ON customer_tokens (customer_seq, token_type, seq);
CREATE INDEX customer_tokens_by_token_id ON customer_tokens (customer_seq, token_id, seq);

CREATE TABLE token_event_entries (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL CONSTRAINT token_event_entries_id_key UNIQUE,
    account_id TEXT NOT NULL,
    token_type TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT token_event_entries_token_key UNIQUE (account_id, token_type, value)
);
CREATE INDEX token_event_entries_by_account ON token_event_entries (account_id, seq);
CREATE INDEX token_event_entries_by_update ON token_event_entries (account_id, updated_at, seq);

CREATE TABLE token_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_seq  BIGINT NOT NULL REFERENCES token_event_entries (seq),
    event      TEXT NOT NULL,
    status     TEXT,
    metadata   TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX token_events_by_entry ON token_events (entry_seq, seq);

CREATE TABLE card_tokens (
    seq                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id                TEXT NOT NULL,
    id                        TEXT NOT NULL,
    status                    TEXT NOT NULL,
    card_brand                TEXT NOT NULL,
    payment_product_type      TEXT NOT NULL,
    token_sealed              BYTEA,        -- AES-256-GCM nonce || ciphertext, never clear text
    token_fingerprint         TEXT,         -- keyed HMAC of the token, for idempotent imports
    masked_pan                TEXT,
    pan_expiry_date           TEXT,
    token_expiry_date         TEXT,
    links                     TEXT,         -- JSON array or NULL
    customer_id               TEXT,
    relationship_id           TEXT,
    transaction_id            TEXT,
    external_token_references TEXT,         -- JSON array or NULL
    created_at                BIGINT NOT NULL,
    created_by                TEXT NOT NULL,
    updated_at                BIGINT NOT NULL,
    deleted_at                BIGINT,
    deleted_by                TEXT,
    CONSTRAINT card_tokens_account_id_id_key UNIQUE (account_id, id)
);
CREATE UNIQUE INDEX card_tokens_fingerprint ON card_tokens (account_id, token_fingerprint) WHERE token_fingerprint IS NOT NULL;
CREATE INDEX card_tokens_by_account ON card_tokens (account_id, seq);
CREATE INDEX card_tokens_by_customer ON card_tokens (account_id, customer_id, seq);
CREATE INDEX card_tokens_by_relationship ON card_tokens (account_id, relationship_id, seq);

CREATE TABLE audit_log (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    account_id    TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       TEXT NOT NULL             -- JSON object, never secret values
);
CREATE INDEX audit_log_by_account ON audit_log (account_id, seq);
