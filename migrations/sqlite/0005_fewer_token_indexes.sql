-- tokenvault schema v5 (SQLite): two indexes of customer_tokens that every token create paid for
-- (a page written at a random place per index, as new tokens go to random customers) and that
-- no list needs. A customer's tokens filtered by type are read through customer_tokens_by_customer
-- (customer_seq, seq) and the type checked per row of that one customer; a delete finds its token
-- among the customer's rows the same way. Uniqueness of live token ids stays with
-- customer_tokens_live_token_id. (Version 4 is another change's.) migrations/postgresql/0005_fewer_token_indexes.sql
-- mirrors this file.
DROP INDEX IF EXISTS customer_tokens_by_customer_type;
DROP INDEX IF EXISTS customer_tokens_by_token_id;
