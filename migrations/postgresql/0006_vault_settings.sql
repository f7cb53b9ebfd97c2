-- tokenvault schema v6 (PostgreSQL), mirroring migrations/sqlite/0006_vault_settings.sql:
-- settings that belong to the data rather than to a process (`token_values`: `plain` when
-- absent, `converting` or `sealed`).

CREATE TABLE vault_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
