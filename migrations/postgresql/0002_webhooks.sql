-- tokenvault schema v2 (PostgreSQL), mirroring migrations/sqlite/0002_webhooks.sql: webhook
-- subscriptions and the durable outbox of card-token events. Outbox rows are written in the
-- same transaction as the change they announce and stay until delivered or given up;
-- `next_attempt_at` doubles as the lease of a claimed row (claims use FOR UPDATE SKIP LOCKED).

CREATE TABLE hook_subscriptions (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL CONSTRAINT hook_subscriptions_id_key UNIQUE,
    account_id    TEXT NOT NULL,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,            -- JSON array of event names
    active        BOOLEAN NOT NULL,
    sealed_secret BYTEA NOT NULL,           -- AES-256-GCM, bound to the account and id
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX hook_subscriptions_by_account ON hook_subscriptions (account_id, seq);

CREATE TABLE webhook_outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL CONSTRAINT webhook_outbox_id_key UNIQUE, -- the event-delivery UUID
    subscription_id TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,          -- the exact JSON sent (and signed)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    gave_up_at      BIGINT,
    created_at      BIGINT NOT NULL
);
-- Only pending rows are indexed: the due lookup never walks delivered history.
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, seq) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX webhook_outbox_pending_by_subscription ON webhook_outbox (subscription_id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
