-- tokenvault schema v10 (SQLite), following Dintero's spec (issue 17). A token type/value keeps
-- its entry (and so its id) for ever once it has one; clearing its events no longer deletes the
-- entry but records when events were deleted, for `GET …/customers/tokens/events?deleted_since=`
-- (aid_customers_tokens_events_get: "return only token events that has been deleted"). Existing
-- entries had no deletions recorded (a clear removed them), so NULL is right for all of them.
-- migrations/postgresql/0010_dintero_conformance.sql does the same.
ALTER TABLE token_event_entries ADD COLUMN deleted_at INTEGER;
CREATE INDEX token_event_entries_by_deletion ON token_event_entries (account_id, deleted_at, seq)
    WHERE deleted_at IS NOT NULL;
-- Entries now outlive their events: `has_events` says whether the events list shows one. Every
-- existing entry has events (a clear without a delete event used to remove the entry).
ALTER TABLE token_event_entries ADD COLUMN has_events INTEGER NOT NULL DEFAULT 1;
-- A type/value added to a customer keeps an id from then on: live tokens without an entry get
-- one (without events) with the token's id, the id TokenDetail already answered for them.
INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, has_events)
SELECT t.id, t.account_id, t.token_type, t.value, t.created_at, 0 FROM customer_tokens t
WHERE t.deleted_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM token_event_entries e
    WHERE e.account_id = t.account_id AND e.token_type = t.token_type AND e.value = t.value
);
-- An INSERT … SELECT that inserted nothing still leaves a 0 counter in sqlite_sequence; a
-- database that never had entries keeps having no counter (as transfers expect).
DELETE FROM sqlite_sequence WHERE name = 'token_event_entries' AND seq = 0;
-- CustomerResponse requires `type`: deleted customers, stripped to their ids and audit fields,
-- keep their type from now on (it was never erased from the customer_type column).
UPDATE customers SET attributes = json_object('type', customer_type)
WHERE deleted_at IS NOT NULL AND attributes = '{}';
