//! Typed settings with their defaults, shared by the command line and the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default embedded database: a file in the working directory, zero set-up.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tokenvault.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Dintero's example `expires_in`.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_ISSUER: &str = "tokenvault";
/// Token requests per second in all: about what one core hashes, so that a flood of made-up
/// client ids is refused at once instead of queueing behind the secret checks.
pub const DEFAULT_TOKEN_ENDPOINT_PER_SECOND: u32 = 50;
/// Request bodies above this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Everything `tokenvault serve` needs.
#[derive(Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Base64 of the 32-byte master key for card tokens. Without it the embedded store keeps a
    /// generated key beside its database file; PostgreSQL deployments must set it, so that all
    /// instances share it.
    pub encryption_key: Option<String>,
    /// The `iss` claim of issued tokens, checked on every call.
    pub issuer: String,
    pub token_ttl_seconds: u64,
    /// Database connections (PostgreSQL) or read connections (SQLite).
    pub pool_size: usize,
    pub acquire_timeout: Duration,
    /// Longest a request may run before it is answered with 503.
    pub request_timeout: Duration,
    /// Print a ready client for the test account `T00000001` at start.
    pub dev: bool,
    /// Token requests allowed per client id and minute (a burst of as many, then a steady rate).
    pub token_requests_per_minute: u32,
    /// API calls allowed per client and second; 0 for no limit.
    pub api_calls_per_second: u32,
    /// Concurrent requests beyond which new ones are shed with 503.
    pub max_in_flight: usize,
    /// Concurrent requests from one client address beyond which its new ones are shed.
    pub max_in_flight_per_address: usize,
    /// Longest a client may take to send a request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Connection bounds: head-read and idle timeouts, connections in all and per address.
    pub connections: crate::http::server::ConnectionLimits,
    /// Token requests allowed per second in all (every client id together, known or not).
    pub token_endpoint_per_second: u32,
    /// Client-secret checks (Argon2id hashes) run at once; beyond, token requests get 503.
    pub credential_checks: usize,
    /// Retry and polling of webhook deliveries.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// How long `Idempotency-Key`s are kept (24 h; tests shorten it).
    pub idempotency_ttl: Duration,
    /// Encrypt customer token `value`s at rest (searchable: see `crypto::values`). Turning it on
    /// converts the stored values at start; once on, the database keeps it on.
    pub seal_token_values: bool,
}

impl ServeConfig {
    /// Defaults for everything but the database; listens on an ephemeral loopback port.
    pub fn new(database_url: impl Into<String>) -> Self {
        let requests = crate::http::RequestSettings::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            encryption_key: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            pool_size: 8,
            acquire_timeout: Duration::from_secs(5),
            request_timeout: requests.request_timeout,
            dev: false,
            token_requests_per_minute: 60,
            api_calls_per_second: 0,
            max_in_flight: requests.max_in_flight,
            max_in_flight_per_address: requests.max_in_flight_per_address,
            body_read_timeout: requests.body_read_timeout,
            connections: crate::http::server::ConnectionLimits::default(),
            token_endpoint_per_second: DEFAULT_TOKEN_ENDPOINT_PER_SECOND,
            credential_checks: crate::auth::clients::CredentialChecks::default_at_once(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            idempotency_ttl: crate::http::idempotency::IdempotencySettings::default().ttl,
            seal_token_values: false,
        }
    }

    /// Where an embedded database keeps its generated card-token key: `<database file>.key`.
    pub fn sqlite_key_file(&self) -> Option<PathBuf> {
        sqlite_path(&self.database_url).map(|path| {
            let mut name = path.into_os_string();
            name.push(".key");
            PathBuf::from(name)
        })
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "****"))
            .field("issuer", &self.issuer)
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("dev", &self.dev)
            .field("token_requests_per_minute", &self.token_requests_per_minute)
            .field("api_calls_per_second", &self.api_calls_per_second)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_in_flight_per_address", &self.max_in_flight_per_address)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("connections", &self.connections)
            .field("token_endpoint_per_second", &self.token_endpoint_per_second)
            .field("credential_checks", &self.credential_checks)
            .field("webhooks", &self.webhooks)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("seal_token_values", &self.seal_token_values)
            .finish()
    }
}

/// The file of a `sqlite://PATH` URL (`sqlite:///abs` is absolute), or `None` for other URLs.
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// Hides the password of a database URL so it can be printed or logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/tv"), "postgres://u:****@db:5432/tv");
        assert_eq!(redact_url("postgres://u@db/tv"), "postgres://u@db/tv");
        assert_eq!(redact_url("sqlite://tokenvault.db"), "sqlite://tokenvault.db");
        let mut config = ServeConfig::new("postgres://u:secret@db/tv");
        config.encryption_key = Some("c2VjcmV0".into());
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret") && !printed.contains("c2VjcmV0"), "{printed}");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://tokenvault.db"), Some(PathBuf::from("tokenvault.db")));
        assert_eq!(sqlite_path("sqlite:///var/lib/tv.db?mode=rwc"), Some(PathBuf::from("/var/lib/tv.db")));
        assert_eq!(sqlite_path("postgres://db/tv"), None);
        assert_eq!(ServeConfig::new("sqlite:///tmp/a.db").sqlite_key_file(), Some(PathBuf::from("/tmp/a.db.key")));
    }
}
