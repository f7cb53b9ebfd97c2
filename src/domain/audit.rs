use serde::Serialize;
use serde_json::Value;

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
