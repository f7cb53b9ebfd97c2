-- tokenvault schema v6 (SQLite): settings that belong to the data rather than to a process, so
-- that every instance on the database follows them. `token_values` is `plain` (absent),
-- `converting` or `sealed` (`serve --seal-token-values`). migrations/postgresql/0006_vault_settings.sql
-- mirrors this file.

CREATE TABLE vault_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
