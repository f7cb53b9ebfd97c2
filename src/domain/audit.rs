//! The audit trail's records: one named constructor per audited action, each spelling out the
//! resource and details it records (alike in shape on purpose: a reader finds what an action
//! records in one place).

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::card_token::{CardToken, CardTokenStatus, DeleteRequestor};
use super::client::ClientRecord;
use super::clock::AccountClock;
use super::customer::{Customer, CustomerUpdate, NewCustomer};
use super::customer_token::{CustomerToken, NewCustomerToken};
use super::fault::FaultRule;
use super::token_event::{TokenEvent, TokenTypeValue};
use super::webhook::{HookSubscription, QueuedBy};
use super::{AccountId, Timestamp};

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

/// A record's place in the audit trail's hash chain: its position (1, 2, …, without gaps) and
/// the keyed hash over the previous link and the record (see `service::audit_chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub position: i64,
    pub hash: Vec<u8>,
}

impl AuditRecord {
    /// The bytes the chain hashes for this record at `position`: every field, the JSON details
    /// with their keys sorted, so that the same record hashes alike on either backend and after
    /// an export.
    pub fn chain_bytes(&self, position: i64) -> Vec<u8> {
        fn sorted(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
                }
                Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
                other => other.clone(),
            }
        }
        json!([
            position,
            self.seq,
            self.at.millis(),
            self.account_id,
            self.actor,
            self.action,
            self.resource_type,
            self.resource_id,
            sorted(&self.details)
        ])
        .to_string()
        .into_bytes()
    }
}

/// An audit record about to be appended; the store assigns `seq`. Stores build them only with the
/// constructors below, so every backend writes the same trail for the same change (an export from
/// one store imported into another reads alike).
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

    /// The audit trail was read (`tokenvault audit`), whole or for one account: reading it is
    /// itself on record.
    pub fn audit_read(account: Option<&AccountId>, actor: &str, at: Timestamp) -> Self {
        let scope = account.map_or("*", AccountId::as_str).to_owned();
        Self::vault_wide(at, actor, "audit.read", "audit_log", scope.clone(), json!({"account": scope}))
    }

    /// The database began keeping a root secret wrapped under `master` (an HSM key's first start).
    pub fn master_root_created(master: &str, actor: &str, at: Timestamp) -> Self {
        Self::vault_wide(
            at,
            actor,
            "master_key.root_created",
            "master_key",
            master.to_owned(),
            json!({"master_key": master}),
        )
    }

    /// Every key the database keeps was re-wrapped from master key `from` to `to`.
    pub fn master_key_rotated(
        from: &str,
        to: &str,
        data_keys: usize,
        signing_keys: usize,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::vault_wide(
            at,
            actor,
            "master_key.rotate",
            "master_key",
            to.to_owned(),
            json!({"from": from, "to": to, "data_keys": data_keys, "signing_keys": signing_keys}),
        )
    }

    /// A share of the master key was entered into a sealed server (never the share itself: its
    /// set and index). `outcome` is `accepted`, `unsealed` or why it was refused.
    pub fn master_key_share_entered(
        set: &str,
        index: u8,
        progress: usize,
        threshold: u8,
        outcome: &str,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::vault_wide(
            at,
            actor,
            "master_key.share",
            "master_key",
            set.to_owned(),
            json!({"share": index, "progress": progress, "threshold": threshold, "outcome": outcome}),
        )
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

/// Changes inside one account. Each constructor is the one definition of its action's details:
/// identifiers, types, statuses and counts, never a secret value (no customer token `value`, no
/// card `token`, no webhook URL or secret).
impl NewAuditRecord {
    /// A customer was created.
    pub fn customer_created(account: &AccountId, customer: &NewCustomer) -> Self {
        Self::in_account(
            account,
            &customer.created_by,
            customer.created_at,
            "customer.create",
            "customer",
            customer.id.to_string(),
            json!({"customer_id": customer.customer_id, "type": customer.customer_type}),
        )
    }

    /// A customer was deleted; `deleted_tokens` are the ids of the live tokens deleted with it
    /// (`delete_tokens`), in creation order, else empty.
    pub fn customer_deleted(
        account: &AccountId,
        customer: &Customer,
        deleted_tokens: &[String],
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "customer.delete",
            "customer",
            customer.id.to_string(),
            json!({"customer_id": customer.customer_id, "deleted_tokens": deleted_tokens}),
        )
    }

    /// A customer was updated (aid_customers_cid_put): the names of the fields the update sent.
    pub fn customer_updated(account: &AccountId, customer: &Customer, update: &CustomerUpdate) -> Self {
        let fields: Vec<&String> = update.changes.keys().collect();
        Self::in_account(
            account,
            &update.updated_by,
            update.updated_at,
            "customer.update",
            "customer",
            customer.id.to_string(),
            json!({"customer_id": customer.customer_id, "fields": fields}),
        )
    }

    /// A customer got a new `customer_id` (aid_customers_cid_change_customer_id_post).
    pub fn customer_id_changed(
        account: &AccountId,
        customer: &Customer,
        old: &str,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "customer.change_customer_id",
            "customer",
            customer.id.to_string(),
            json!({"old": old, "new": customer.customer_id}),
        )
    }

    /// The account's customer settings were replaced (aid_customers_atributes_put): the
    /// top-level fields set, never their values (an HMAC auto-token `secret` is among them).
    pub fn customer_settings_put(account: &AccountId, fields: Vec<String>, actor: &str, at: Timestamp) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "customer_settings.put",
            "customer_settings",
            account.to_string(),
            json!({"fields": fields}),
        )
    }

    /// A customer token was created. `delete_token_events` is the request's flag;
    /// `events_deleted` how many token events of the token's type/value it removed (0 without the
    /// flag or when none were recorded).
    pub fn customer_token_created(
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
        events_deleted: u64,
    ) -> Self {
        Self::in_account(
            account,
            &token.created_by,
            token.created_at,
            "customer_token.create",
            "customer_token",
            token.id.to_string(),
            json!({
                "customer_id": customer_id,
                "token_id": token.token_id,
                "type": token.token_type,
                "delete_token_events": delete_token_events,
                "events_deleted": events_deleted,
            }),
        )
    }

    /// A live customer token was deleted (a repeated delete changes nothing and records nothing).
    pub fn customer_token_deleted(
        account: &AccountId,
        customer_id: &str,
        token: &CustomerToken,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "customer_token.delete",
            "customer_token",
            token.id.to_string(),
            json!({"customer_id": customer_id, "token_id": token.token_id, "type": token.token_type}),
        )
    }

    /// A token event was recorded for a type/value; the resource is its token event entry.
    pub fn token_event_recorded(
        account: &AccountId,
        entry_id: &str,
        token: &TokenTypeValue,
        event: &TokenEvent,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "token_event.record",
            "token_event",
            entry_id.to_owned(),
            json!({"type": token.token_type, "event": event.event, "status": event.status}),
        )
    }

    /// The token events of a type/value were cleared: `events_deleted` of them went, and
    /// `delete_event`, when given, was recorded in their place (else the entry went too).
    pub fn token_events_cleared(
        account: &AccountId,
        entry_id: &str,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        events_deleted: u64,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "token_events.clear",
            "token_event",
            entry_id.to_owned(),
            json!({
                "type": token.token_type,
                "events_deleted": events_deleted,
                "delete_event": delete_event.map(|e| json!({"event": e.event, "status": e.status})),
            }),
        )
    }

    /// A card token was created through the API.
    pub fn card_token_created(card: &CardToken) -> Self {
        Self::card_token_added(card, "card_token.create")
    }

    /// A card token was imported (`tokenvault card-tokens import`); one already present is not.
    pub fn card_token_imported(card: &CardToken) -> Self {
        Self::card_token_added(card, "card_token.import")
    }

    fn card_token_added(card: &CardToken, action: &'static str) -> Self {
        Self::in_account(
            &card.account_id,
            &card.created_by,
            card.created_at,
            action,
            "card_token",
            card.id.clone(),
            json!({"status": card.status.as_str()}),
        )
    }

    /// A card token's status changed (setting the current status again records nothing).
    pub fn card_token_status_changed(
        account: &AccountId,
        id: &str,
        from: CardTokenStatus,
        to: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "card_token.status",
            "card_token",
            id.to_owned(),
            json!({"from": from.as_str(), "to": to.as_str()}),
        )
    }

    /// A card token was deleted, with the caller's `reason` and `requestor`.
    pub fn card_token_deleted(
        account: &AccountId,
        id: &str,
        reason: Option<&str>,
        requestor: DeleteRequestor,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "card_token.delete",
            "card_token",
            id.to_owned(),
            json!({"reason": reason, "requestor": requestor.as_str()}),
        )
    }

    /// A webhook subscription was created. Only its events: the URL may carry the receiver's
    /// credentials.
    pub fn hook_subscription_created(subscription: &HookSubscription) -> Self {
        Self::in_account(
            &subscription.account_id,
            &subscription.created_by,
            subscription.created_at,
            "hook_subscription.create",
            "hook_subscription",
            subscription.id.to_string(),
            json!({"events": subscription.events}),
        )
    }

    /// A webhook subscription was deleted, dropping `dropped_deliveries` deliveries it still owed.
    pub fn hook_subscription_deleted(
        account: &AccountId,
        id: Uuid,
        dropped_deliveries: u64,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            "hook_subscription.delete",
            "hook_subscription",
            id.to_string(),
            json!({"dropped_deliveries": dropped_deliveries}),
        )
    }

    /// A delivery was queued on request (`how`: `"ping"` for `aid_source_hooks_hid_ping_post`,
    /// `"resend"` for the resend extension), so that who made the receiver get it stays on record.
    pub fn webhook_delivery_queued(
        account: &AccountId,
        subscription: Uuid,
        delivery: Uuid,
        how: QueuedBy,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        Self::in_account(
            account,
            actor,
            at,
            match how {
                QueuedBy::Ping => "hook_subscription.ping",
                QueuedBy::Resend => "hook_subscription.resend",
            },
            "hook_subscription",
            subscription.to_string(),
            json!({"delivery": delivery}),
        )
    }

    /// An API client was revoked (`tokenvault clients revoke`): its row is gone and its tokens
    /// are refused. Only its scopes, never its secret hash.
    pub fn client_revoked(client: &ClientRecord, actor: &str, at: Timestamp) -> Self {
        Self::in_account(
            &client.account_id,
            actor,
            at,
            "client.revoke",
            "client",
            client.client_id.clone(),
            json!({"scopes": client.scopes}),
        )
    }

    /// An API client got a new secret (`tokenvault clients rotate-secret`); `secret_generation`
    /// is the new generation, so tokens of earlier ones are refused.
    pub fn client_secret_rotated(client: &ClientRecord, actor: &str, at: Timestamp) -> Self {
        Self::in_account(
            &client.account_id,
            actor,
            at,
            "client.rotate_secret",
            "client",
            client.client_id.clone(),
            json!({"secret_generation": client.secret_generation}),
        )
    }

    /// A sandbox account was reset; `counts` are the rows removed per kind (the store's
    /// `ResetCounts`).
    pub fn sandbox_reset(account: &AccountId, counts: &impl Serialize, actor: &str, at: Timestamp) -> Self {
        let details = serde_json::to_value(counts).unwrap_or_default();
        Self::in_account(account, actor, at, "sandbox.reset", "account", account.as_str().to_owned(), details)
    }

    /// A fault rule was added to a test account (`POST …/sandbox/faults`).
    pub fn fault_rule_added(rule: &FaultRule) -> Self {
        let details = json!({
            "method": rule.method, "path": rule.path, "client_id": rule.client_id,
            "fault": rule.effect.to_json(), "frequency": rule.frequency.to_json(), "until": rule.until,
        });
        Self::in_account(
            &rule.account_id,
            &rule.created_by,
            rule.created_at,
            "sandbox.fault.add",
            "fault_rule",
            rule.id.to_string(),
            details,
        )
    }

    /// A fault rule was removed (`DELETE …/sandbox/faults/{id}`).
    pub fn fault_rule_deleted(account: &AccountId, id: Uuid, actor: &str, at: Timestamp) -> Self {
        Self::in_account(account, actor, at, "sandbox.fault.delete", "fault_rule", id.to_string(), json!({}))
    }

    /// Every fault rule of an account was removed (`DELETE …/sandbox/faults`).
    pub fn fault_rules_cleared(account: &AccountId, count: u64, actor: &str, at: Timestamp) -> Self {
        let id = account.as_str().to_owned();
        Self::in_account(account, actor, at, "sandbox.faults.clear", "account", id, json!({"fault_rules": count}))
    }

    /// A test account's clock was set or advanced (`PUT …/sandbox/clock`).
    pub fn clock_set(clock: &AccountClock) -> Self {
        let id = clock.account_id.as_str().to_owned();
        let details = json!({"offset_ms": clock.offset_ms});
        Self::in_account(
            &clock.account_id,
            &clock.updated_by,
            clock.updated_at,
            "sandbox.clock.set",
            "account",
            id,
            details,
        )
    }

    /// A test account's clock went back to real time (`DELETE …/sandbox/clock`).
    pub fn clock_cleared(account: &AccountId, actor: &str, at: Timestamp) -> Self {
        let id = account.as_str().to_owned();
        Self::in_account(account, actor, at, "sandbox.clock.clear", "account", id, json!({}))
    }

    /// A card-token event was emitted on request (`POST …/sandbox/webhooks/trigger`), without a
    /// change of the token.
    pub fn webhook_triggered(
        account: &AccountId,
        token_id: &str,
        event: &str,
        queued: u64,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        let details = json!({"event": event, "deliveries": queued});
        Self::in_account(account, actor, at, "sandbox.webhook.trigger", "card_token", token_id.to_owned(), details)
    }

    fn in_account(
        account: &AccountId,
        actor: &str,
        at: Timestamp,
        action: &'static str,
        resource_type: &'static str,
        resource_id: String,
        details: Value,
    ) -> Self {
        Self {
            at,
            account_id: account.as_str().to_owned(),
            actor: actor.to_owned(),
            action,
            resource_type,
            resource_id,
            details,
        }
    }
}
