-- tokenvault schema v7 (PostgreSQL): nothing to change. migrations/sqlite/0007_customer_seq_lookup.sql
-- adds an index so that SQLite can find a live customer's seq without reading the customer's
-- row; this version exists here so that both backends keep the same schema numbers (an export
-- carries its schema version, and an import refuses a newer one).
SELECT 1;
