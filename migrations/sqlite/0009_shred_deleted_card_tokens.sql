-- tokenvault schema v9 (SQLite): no schema change. Deleting a card token now erases its secret
-- (the sealed PSP token and its fingerprint) in the delete's transaction; this erases it from the
-- card tokens deleted before, so that no deleted token keeps its secret. The rows and their audit
-- records stay. migrations/postgresql/0009_shred_deleted_card_tokens.sql does the same.
UPDATE card_tokens SET token_sealed = NULL, token_fingerprint = NULL
WHERE status = 'DELETED' AND (token_sealed IS NOT NULL OR token_fingerprint IS NOT NULL);
