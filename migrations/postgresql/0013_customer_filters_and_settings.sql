-- tokenvault schema v13 (PostgreSQL), following Dintero's customers spec (issue 17 items 4 and
-- 5). migrations/sqlite/0013_customer_filters_and_settings.sql mirrors this file.
--
-- `name_key`: the customer's `first_name` and `last_name`, joined by a space and lower-cased, for
-- `GET …/customers/users?search=` (aid_customers_get: "search term match name, phone number,
-- customer_id or email"). Deleted customers keep no name.
ALTER TABLE customers ADD COLUMN name_key TEXT;
UPDATE customers SET name_key = NULLIF(lower(btrim(
        coalesce(attributes::jsonb ->> 'first_name', '') || ' ' ||
        coalesce(attributes::jsonb ->> 'last_name', ''))), '')
WHERE deleted_at IS NULL;
-- `since_datetime` ("added or modified since"): pages in order of `updated_at`.
CREATE INDEX customers_by_update ON customers (account_id, updated_at, seq);

-- Per-account customer settings (aid_customers_atributes_get/put): the CustomersSettings object
-- as last put, kept verbatim (JSON text, key order as sent).
CREATE TABLE customer_settings (
    account_id TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
