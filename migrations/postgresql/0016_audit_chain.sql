-- The audit trail's hash chain (service::audit_chain): each record's place in the chain and its
-- keyed hash over the previous one, set by the background sealer; NULL until sealed.
ALTER TABLE audit_log ADD COLUMN chain_pos BIGINT;
ALTER TABLE audit_log ADD COLUMN chain_hash BYTEA;
CREATE UNIQUE INDEX audit_log_chain ON audit_log (chain_pos);
CREATE INDEX audit_log_unsealed ON audit_log (seq) WHERE chain_pos IS NULL;
