use serde::Serialize;
use serde_json::{json, Value};

use super::Timestamp;

/// One append-only record of a change: who did what to which resource, and why. It never holds
/// secret values (no card `token`, no client secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: Timestamp,
    pub account_id: String,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub details: Value,
}

/// An audit record about to be appended; the store assigns `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    pub at: Timestamp,
    pub account_id: String,
    pub actor: String,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub details: Value,
}

/// Vault-wide changes, recorded alike by every store (they belong to no account).
impl NewAuditRecord {
    /// A data key was added to the key ring (`tokenvault keys rotate`).
    pub fn data_key_added(key_id: u32, actor: &str, at: Timestamp) -> Self {
        Self::vault_wide(at, actor, "encryption_key.add", "encryption_key", key_id.to_string(), json!({}))
    }

    /// The customer-token value mode changed (`--seal-token-values`).
    pub fn token_value_mode_set(setting: &str, mode: &str, actor: &str, at: Timestamp) -> Self {
        Self::vault_wide(at, actor, "token_values.mode", "vault_settings", setting.to_owned(), json!({"mode": mode}))
    }

    fn vault_wide(
        at: Timestamp,
        actor: &str,
        action: &'static str,
        resource_type: &'static str,
        resource_id: String,
        details: Value,
    ) -> Self {
        Self { at, account_id: String::new(), actor: actor.to_owned(), action, resource_type, resource_id, details }
    }
}
