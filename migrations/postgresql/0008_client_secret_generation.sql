-- tokenvault schema v8 (PostgreSQL), mirroring migrations/sqlite/0008_client_secret_generation.sql:
-- each client's credential generation, incremented by `tokenvault clients rotate-secret` and
-- carried by access tokens (claim `gen`), so that a rotated secret's tokens are refused.

ALTER TABLE clients ADD COLUMN secret_generation BIGINT NOT NULL DEFAULT 1;
