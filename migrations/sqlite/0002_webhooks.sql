-- tokenvault schema v2 (SQLite): webhook subscriptions and the durable outbox of card-token
-- events. Outbox rows are written in the same transaction as the change they announce and
-- stay until delivered or given up; `next_attempt_at` doubles as the lease of a claimed row.
-- migrations/postgresql/0002_webhooks.sql mirrors this file.

CREATE TABLE hook_subscriptions (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,            -- JSON array of event names
    active        INTEGER NOT NULL,         -- 0 or 1
    sealed_secret BLOB NOT NULL,            -- AES-256-GCM, bound to the account and id
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX hook_subscriptions_by_account ON hook_subscriptions (account_id, seq);

CREATE TABLE webhook_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,   -- the event-delivery UUID
    subscription_id TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,          -- the exact JSON sent (and signed)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    gave_up_at      INTEGER,
    created_at      INTEGER NOT NULL
);
-- Only pending rows are indexed: the due lookup never walks delivered history.
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, seq) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX webhook_outbox_pending_by_subscription ON webhook_outbox (subscription_id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
