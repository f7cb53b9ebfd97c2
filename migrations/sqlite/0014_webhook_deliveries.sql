-- Webhook delivery history for Dintero's deliveries API (aid_source_hooks_hid_deliveries_get,
-- aid_source_hooks_hid_deliveries_did_get), and what the worker needs to delete a subscription
-- after consecutive failed deliveries. migrations/postgresql/0014_webhook_deliveries.sql mirrors
-- this file.

-- The `event-delivery` GUID a delivery sends. It is the row's own `id`, except for a resent
-- delivery, which is a new row (its own `id`) carrying the original's GUID and body.
ALTER TABLE webhook_outbox ADD COLUMN event_delivery TEXT;
UPDATE webhook_outbox SET event_delivery = id;
-- The HTTP status of the latest attempt (NULL before the first, or when none was answered).
ALTER TABLE webhook_outbox ADD COLUMN last_status INTEGER;
-- A subscription's deliveries, newest first, finished ones included.
CREATE INDEX webhook_outbox_by_subscription ON webhook_outbox (subscription_id, seq);

-- Deliveries given up in a row since the last one delivered.
ALTER TABLE hook_subscriptions ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;

-- One row per attempt, written in the transaction that records the attempt's outcome on its
-- outbox row; pruned with that row.
CREATE TABLE webhook_attempts (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL,         -- webhook_outbox.id
    attempted_at     INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status           INTEGER,               -- the receiver's HTTP status; NULL when none came
    error            TEXT,                  -- bounded, never a secret
    request_headers  TEXT,                  -- JSON object of the headers sent; NULL when nothing was sent
    response_headers TEXT,                  -- JSON object, bounded
    response_body    TEXT                   -- the first bytes of the receiver's answer
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, seq);
