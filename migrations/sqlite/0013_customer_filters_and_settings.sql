-- tokenvault schema v13 (SQLite), following Dintero's customers spec (issue 17 items 4 and 5).
-- migrations/postgresql/0013_customer_filters_and_settings.sql mirrors this file.
--
-- `name_key`: the customer's `first_name` and `last_name`, joined by a space and lower-cased, for
-- `GET …/customers/users?search=` (aid_customers_get: "search term match name, phone number,
-- customer_id or email"). tokenvault lower-cases it in Rust (Unicode); existing rows are filled
-- here with SQLite's lower(), which folds ASCII letters only, so a pre-existing non-ASCII capital
-- keeps its case until the customer is next updated. Deleted customers keep no name.
ALTER TABLE customers ADD COLUMN name_key TEXT;
UPDATE customers SET name_key = lower(trim(
        coalesce(json_extract(attributes, '$.first_name'), '') || ' ' ||
        coalesce(json_extract(attributes, '$.last_name'), '')))
WHERE deleted_at IS NULL;
UPDATE customers SET name_key = NULL WHERE name_key = '';
-- `since_datetime` ("added or modified since"): pages in order of `updated_at`.
CREATE INDEX customers_by_update ON customers (account_id, updated_at, seq);

-- Per-account customer settings (aid_customers_atributes_get/put): the CustomersSettings object
-- as last put, kept verbatim (JSON).
CREATE TABLE customer_settings (
    account_id TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
