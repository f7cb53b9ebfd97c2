//! What `tokenvault serve` runs with: one struct assembled from the settings each floor owns,
//! with the one list of defaults ([`ServeConfig::new`]) that both the layering in
//! [`super::resolve`] and programmatic users (the tests) start from.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::clients::CredentialChecks;
use crate::crypto::hsm::HsmSettings;
use crate::http::server::ConnectionLimits;
use crate::http::RequestSettings;
use crate::service::backup::BackupSchedule;
use crate::service::idempotency::IdempotencySettings;
use crate::service::journal::JournalSettings;
use crate::service::keys::MasterKey;
use crate::service::webhook_worker::WebhookSettings;
use crate::service::StoreOptions;
pub use crate::store::url::{DatabaseUrl, UnsupportedUrl};

/// The audit chain's head is logged hourly.
pub const DEFAULT_AUDIT_CHECKPOINT_SECONDS: u64 = 3600;
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tokenvault.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Dintero's example `expires_in`.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_ISSUER: &str = "tokenvault";
/// The `--dev` client's id unless `--dev-client-id` names another.
pub const DEFAULT_DEV_CLIENT_ID: &str = "tokenvault-dev-T00000001";
/// Token requests per client id and minute.
pub const DEFAULT_TOKEN_REQUESTS_PER_MINUTE: u32 = 60;
/// Token requests per second in all: about what one core hashes, so that a flood of made-up
/// client ids is refused at once instead of queueing behind the secret checks.
pub const DEFAULT_TOKEN_ENDPOINT_PER_SECOND: u32 = 50;

/// A secret setting: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"****\"")
    }
}

/// Everything `tokenvault serve` needs. `Debug` hides the secrets (it is logged at start).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    /// Base64 of the 32-byte master key. Without it the embedded store keeps a generated key
    /// beside its database file; PostgreSQL deployments must set it, so that all instances share
    /// it.
    pub encryption_key: Option<Secret>,
    /// The master key inside an HSM instead (`pkcs11_*`); its PIN is hidden from `Debug`.
    pub hsm: Option<HsmSettings>,
    /// Start sealed: the master key arrives as shares entered at run time (`tokenvault unseal`).
    pub unseal_with_shares: bool,
    /// The `iss` claim of issued tokens, checked on every call.
    pub issuer: String,
    /// The base URL clients reach the server at (`https://vault.example.com`, no trailing
    /// slash), used for the session `url`s it hands out; without it, the request's `Host`. Set it
    /// behind a reverse proxy or TLS terminator, where `Host` is not what the browser can open.
    pub public_url: Option<String>,
    pub token_ttl_seconds: u64,
    pub store: StoreOptions,
    pub requests: RequestSettings,
    pub connections: ConnectionLimits,
    /// Print a ready client for the test account `T00000001` at start, load demo data, and log
    /// one line per request.
    pub dev: bool,
    /// The `--dev` client's id, the same on every start.
    pub dev_client_id: String,
    /// The `--dev` client's secret; a new random one at every start when not set.
    pub dev_client_secret: Option<Secret>,
    /// Token requests allowed per client id and minute (a burst of as many, then a steady rate).
    pub token_requests_per_minute: u32,
    /// Token requests allowed per second in all (every client id together, known or not).
    pub token_endpoint_per_second: u32,
    /// Client-secret checks (Argon2id hashes) run at once; beyond, token requests get 503.
    pub credential_checks: usize,
    /// API calls allowed per client and second; 0 for no limit.
    pub api_calls_per_second: u32,
    /// Retry and polling of webhook deliveries, and which targets they may reach.
    pub webhooks: WebhookSettings,
    /// How long `Idempotency-Key`s are kept (24 h; tests shorten it).
    pub idempotency: IdempotencySettings,
    /// Encrypt customer token `value`s at rest (searchable: see `crypto::values`). Turning it on
    /// converts the stored values at start; once on, the database keeps it on.
    pub seal_token_values: bool,
    /// Backups `serve` takes by itself (`backup_dir`); none when not set.
    pub backups: Option<BackupSchedule>,
    /// Base64 of the key scheduled backups are sealed with.
    pub backup_key: Option<Secret>,
    /// How often `serve` logs the audit chain's head (a checkpoint).
    pub audit_checkpoint_interval: Duration,
    /// The request journal of test accounts: on or off, and how much of it is kept.
    pub journal: JournalSettings,
}

impl ServeConfig {
    /// The defaults for everything but the database; listens on an ephemeral loopback port.
    pub fn new(database_url: DatabaseUrl) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            encryption_key: None,
            hsm: None,
            unseal_with_shares: false,
            issuer: DEFAULT_ISSUER.to_owned(),
            public_url: None,
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            store: StoreOptions::default(),
            requests: RequestSettings::default(),
            connections: ConnectionLimits::default(),
            dev: false,
            dev_client_id: DEFAULT_DEV_CLIENT_ID.to_owned(),
            dev_client_secret: None,
            token_requests_per_minute: DEFAULT_TOKEN_REQUESTS_PER_MINUTE,
            token_endpoint_per_second: DEFAULT_TOKEN_ENDPOINT_PER_SECOND,
            credential_checks: CredentialChecks::default_at_once(),
            api_calls_per_second: 0,
            webhooks: WebhookSettings::default(),
            idempotency: IdempotencySettings::default(),
            seal_token_values: false,
            backups: None,
            backup_key: None,
            audit_checkpoint_interval: Duration::from_secs(DEFAULT_AUDIT_CHECKPOINT_SECONDS),
            journal: JournalSettings::default(),
        }
    }

    /// Where the master key comes from: an HSM, the setting, else (embedded database) its key
    /// file; `None` for PostgreSQL without a key, which cannot start, and for a server started
    /// sealed (its key arrives as shares).
    pub fn master_key(&self) -> Option<MasterKey> {
        if self.unseal_with_shares {
            return None;
        }
        match (&self.hsm, &self.encryption_key, self.database_url.sqlite_key_file()) {
            (Some(hsm), _, _) => Some(MasterKey::Hsm(hsm.clone())),
            (None, Some(key), _) => Some(MasterKey::Given(key.0.clone())),
            (None, None, Some(path)) => Some(MasterKey::File(path)),
            (None, None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut config = ServeConfig::new("postgres://u:secret@db/tv".parse().unwrap());
        config.encryption_key = Some(Secret("c2VjcmV0".into()));
        let printed = format!("{config:?}");
        assert!(!printed.contains("u:secret@") && !printed.contains("c2VjcmV0"), "{printed}");
        assert!(printed.contains("seal_token_values: false"), "every setting is shown: {printed}");
    }
}
