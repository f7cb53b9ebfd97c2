-- tokenvault schema v8 (SQLite): each client's credential generation. `tokenvault clients
-- rotate-secret` increments it; access tokens carry the generation they were issued under (claim
-- `gen`) and are refused once it is no longer the client's, so a rotated (leaked) secret's tokens
-- stop working. Existing clients start at 1, the generation tokens without the claim count as.
-- migrations/postgresql/0008_client_secret_generation.sql mirrors this file.

ALTER TABLE clients ADD COLUMN secret_generation INTEGER NOT NULL DEFAULT 1;
