-- tokenvault schema v7 (SQLite): an index that answers "the seq of the live customer with this
-- customer_id" by itself. Listing a customer's tokens needs only that seq, but the unique partial
-- index customers_live_customer_id cannot cover the lookup (SQLite reads `deleted_at` from the
-- table row to check the `deleted_at IS NULL` term even though the index's WHERE implies it), so
-- every list read a customers table leaf at a random place: at 10M tokens (1M customers) one more
-- page from disk or the OS page cache per request. With deleted_at in the key the lookup is a
-- SEARCH USING COVERING INDEX. Uniqueness stays with customers_live_customer_id.
-- migrations/postgresql/0007_customer_seq_lookup.sql keeps the numbers aligned and changes nothing.
CREATE INDEX customers_seq_by_customer_id ON customers (account_id, customer_id, deleted_at);
