//! The settings of tokenvault, layered: command-line flags, then `TOKENVAULT_*` environment
//! variables, then an optional TOML file, then defaults. Every bad value stops start-up with a
//! message naming the setting; `tokenvault config` shows the result and where each value came
//! from, secrets masked.
//!
//! Each floor owns the settings struct it runs with (`http::RequestSettings`,
//! `http::server::ConnectionLimits`, `service::webhook_worker::WebhookSettings`, …) and its
//! defaults; this module only assembles them into [`ServeConfig`], and is read by the start-up
//! code (`app`) and the command line alone.

mod serve;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::clients::MIN_GIVEN_SECRET_CHARS;
use crate::crypto::hsm::HsmSettings;
use crate::crypto::TokenCipher;
use crate::service::backup::{BackupKey, BackupSchedule};
pub use serve::{
    DatabaseUrl, Secret, ServeConfig, UnsupportedUrl, DEFAULT_DATABASE_URL, DEFAULT_ISSUER, DEFAULT_LISTEN,
    DEFAULT_TOKEN_ENDPOINT_PER_SECOND, DEFAULT_TOKEN_TTL_SECONDS,
};

/// Values given on the command line or in the environment (clap merges those two); `None`
/// where neither gave one.
pub type Given = FileSettings;

/// One layer of settings: the TOML file, or the flags and environment; named as in the
/// configuration table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub encryption_key: Option<String>,
    pub pkcs11_module: Option<std::path::PathBuf>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_pin: Option<String>,
    pub pkcs11_key_label: Option<String>,
    pub unseal_with_shares: Option<bool>,
    pub token_ttl: Option<u64>,
    pub issuer: Option<String>,
    pub public_url: Option<String>,
    pub pool_size: Option<usize>,
    pub acquire_timeout_ms: Option<u64>,
    pub dev: Option<bool>,
    pub token_rate_limit: Option<u32>,
    pub rate_limit: Option<u32>,
    pub max_in_flight: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub seal_token_values: Option<bool>,
    pub max_in_flight_per_address: Option<usize>,
    pub body_read_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub token_endpoint_rate: Option<u32>,
    pub credential_checks: Option<usize>,
    pub webhook_allow_private_targets: Option<bool>,
    pub webhook_max_attempts: Option<u32>,
    pub webhook_delete_after_failures: Option<u32>,
    pub webhook_retention_hours: Option<u64>,
    pub dev_client_id: Option<String>,
    pub dev_client_secret: Option<String>,
    pub backup_dir: Option<std::path::PathBuf>,
    pub backup_interval: Option<u64>,
    pub backup_keep: Option<usize>,
    pub backup_key: Option<String>,
    pub backup_key_file: Option<std::path::PathBuf>,
    pub audit_checkpoint_interval: Option<u64>,
    pub journal: Option<bool>,
    pub journal_max_entries: Option<u64>,
    pub journal_max_age_hours: Option<u64>,
    pub journal_max_per_second: Option<u32>,
}

/// A setting that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: String,
    pub message: String,
}

fn invalid(setting: &str, message: impl Into<String>) -> SettingError {
    SettingError { setting: setting.to_owned(), message: message.into() }
}

/// `--public-url`: an absolute `http`/`https` URL of a host, with an optional path prefix, and
/// neither query nor fragment; a trailing `/` is dropped, so that paths can be appended.
fn public_url(raw: String) -> Result<String, SettingError> {
    let bad = || invalid("public_url", format!("{raw:?} is not an http(s) URL such as https://vault.example.com"));
    let url = url::Url::parse(&raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Reads the TOML file; syntax errors and unknown keys name the line and key.
pub fn read_file(path: &Path) -> Result<FileSettings, SettingError> {
    let setting = format!("config file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| invalid(&setting, e.to_string()))?;
    toml::from_str(&text).map_err(|e| invalid(&setting, e.to_string().trim_end().replace('\n', " ")))
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    FlagOrEnvironment,
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FlagOrEnvironment => "flag or environment",
            Self::File => "config file",
            Self::Default => "default",
        })
    }
}

/// The effective settings and the source of each, in configuration-table order.
pub struct Resolved {
    pub config: ServeConfig,
    pub sources: Vec<(&'static str, Source)>,
}

/// The two layers above the defaults, and where each setting's value came from so far.
struct Layers {
    given: Given,
    file: FileSettings,
    sources: Vec<(&'static str, Source)>,
}

impl Layers {
    /// The value of setting `name` (`field` reads it from a layer): given, else from the file,
    /// else `default`.
    fn pick<T>(&mut self, name: &'static str, field: impl Fn(&mut FileSettings) -> Option<T>, default: T) -> T {
        let (value, source) = match (field(&mut self.given), field(&mut self.file)) {
            (Some(value), _) => (value, Source::FlagOrEnvironment),
            (None, Some(value)) => (value, Source::File),
            (None, None) => (default, Source::Default),
        };
        self.sources.push((name, source));
        value
    }

    /// [`Layers::pick`] for a setting whose 0 would disable the server (a limit, a timeout).
    fn positive<T: PartialEq + From<u8>>(
        &mut self,
        name: &'static str,
        field: impl Fn(&mut FileSettings) -> Option<T>,
        default: T,
    ) -> Result<T, SettingError> {
        let value = self.pick(name, field, default);
        if value == T::from(0) {
            return Err(invalid(name, "must be at least 1"));
        }
        Ok(value)
    }

    /// The defaults on the layered database URL and master key (checked as base64 of 32 bytes),
    /// as every command reads them.
    fn database(&mut self) -> Result<ServeConfig, SettingError> {
        let url = self.pick("database_url", |s| s.database_url.take(), DEFAULT_DATABASE_URL.to_owned());
        let database_url: DatabaseUrl = url.parse().map_err(|e| invalid("database_url", format!("{e}")))?;
        let mut config = ServeConfig::new(database_url);
        config.encryption_key = self.pick("encryption_key", |s| s.encryption_key.take().map(Some), None).map(Secret);
        if let Some(key) = &config.encryption_key {
            TokenCipher::from_base64(&key.0)
                .map_err(|_| invalid("encryption_key", "must be base64 of exactly 32 bytes"))?;
        }
        let module = self.pick("pkcs11_module", |s| s.pkcs11_module.take().map(Some), None);
        let token = self.pick("pkcs11_token", |s| s.pkcs11_token.take(), DEFAULT_PKCS11_TOKEN.to_owned());
        let pin = self.pick("pkcs11_pin", |s| s.pkcs11_pin.take().map(Some), None);
        let key_label =
            self.pick("pkcs11_key_label", |s| s.pkcs11_key_label.take(), DEFAULT_PKCS11_KEY_LABEL.to_owned());
        config.hsm = match (module, pin) {
            (Some(module), Some(pin)) => Some(HsmSettings { module, token_label: token, pin, key_label }),
            (Some(_), None) => return Err(invalid("pkcs11_pin", "must be set when pkcs11_module is")),
            (None, Some(_)) => return Err(invalid("pkcs11_module", "must be set when pkcs11_pin is")),
            (None, None) => None,
        };
        config.unseal_with_shares = self.pick("unseal_with_shares", |s| s.unseal_with_shares.take(), false);
        Ok(config)
    }

    /// A positive number of milliseconds (settings named `…_ms`).
    fn millis(
        &mut self,
        name: &'static str,
        field: impl Fn(&mut FileSettings) -> Option<u64>,
        default: Duration,
    ) -> Result<Duration, SettingError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.positive(name, field, default).map(Duration::from_millis)
    }
}

/// Layers the given values over the file over the defaults ([`ServeConfig::new`]), and checks
/// every value.
pub fn resolve(given: Given, file: Option<FileSettings>) -> Result<Resolved, SettingError> {
    let mut l = Layers { given, file: file.unwrap_or_default(), sources: Vec::new() };
    let listen = l.pick("listen", |s| s.listen.take(), DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| invalid("listen", format!("{listen:?} is not an address such as 127.0.0.1:8080")))?;
    let mut config = l.database()?;
    let defaults = ServeConfig::new(config.database_url.clone());
    config.listen = listen;
    // A server has one master key (a command such as `keys rotate-master --to-pkcs11` may name two).
    let master_keys = [config.encryption_key.is_some(), config.hsm.is_some(), config.unseal_with_shares];
    if master_keys.iter().filter(|given| **given).count() > 1 {
        return Err(invalid(
            "encryption_key",
            "give one master key: encryption_key, pkcs11_module (an HSM) or unseal_with_shares",
        ));
    }
    if config.encryption_key.is_none()
        && config.hsm.is_none()
        && !config.unseal_with_shares
        && config.database_url.is_postgres()
    {
        return Err(invalid(
            "encryption_key",
            "must be set when the database is PostgreSQL (the same on every instance)",
        ));
    }
    config.token_ttl_seconds = l.pick("token_ttl", |s| s.token_ttl.take(), defaults.token_ttl_seconds);
    if config.token_ttl_seconds == 0 {
        return Err(invalid("token_ttl", "must be at least 1 second"));
    }
    config.issuer = l.pick("issuer", |s| s.issuer.take(), defaults.issuer.clone());
    if config.issuer.is_empty() {
        return Err(invalid("issuer", "must not be empty"));
    }
    config.public_url = l.pick("public_url", |s| s.public_url.take().map(Some), None).map(public_url).transpose()?;
    config.store.pool_size = l.positive("pool_size", |s| s.pool_size.take(), defaults.store.pool_size)?;
    config.store.acquire_timeout =
        l.millis("acquire_timeout_ms", |s| s.acquire_timeout_ms.take(), defaults.store.acquire_timeout)?;
    config.dev = l.pick("dev", |s| s.dev.take(), defaults.dev);
    config.token_requests_per_minute =
        l.pick("token_rate_limit", |s| s.token_rate_limit.take(), defaults.token_requests_per_minute);
    if config.token_requests_per_minute == 0 {
        return Err(invalid("token_rate_limit", "must be at least 1 (token requests per client and minute)"));
    }
    config.api_calls_per_second = l.pick("rate_limit", |s| s.rate_limit.take(), defaults.api_calls_per_second);
    let requests = &mut config.requests;
    requests.max_in_flight = l.positive("max_in_flight", |s| s.max_in_flight.take(), requests.max_in_flight)?;
    requests.request_timeout =
        l.millis("request_timeout_ms", |s| s.request_timeout_ms.take(), requests.request_timeout)?;
    config.seal_token_values = l.pick("seal_token_values", |s| s.seal_token_values.take(), defaults.seal_token_values);
    let requests = &mut config.requests;
    requests.max_in_flight_per_address = l.positive(
        "max_in_flight_per_address",
        |s| s.max_in_flight_per_address.take(),
        requests.max_in_flight_per_address,
    )?;
    requests.body_read_timeout =
        l.millis("body_read_timeout_ms", |s| s.body_read_timeout_ms.take(), requests.body_read_timeout)?;
    let connections = &mut config.connections;
    connections.header_read_timeout =
        l.millis("header_read_timeout_ms", |s| s.header_read_timeout_ms.take(), connections.header_read_timeout)?;
    connections.idle_timeout = l.millis("idle_timeout_ms", |s| s.idle_timeout_ms.take(), connections.idle_timeout)?;
    connections.max_connections =
        l.positive("max_connections", |s| s.max_connections.take(), connections.max_connections)?;
    connections.max_connections_per_address = l.positive(
        "max_connections_per_address",
        |s| s.max_connections_per_address.take(),
        connections.max_connections_per_address,
    )?;
    config.token_endpoint_per_second =
        l.positive("token_endpoint_rate", |s| s.token_endpoint_rate.take(), defaults.token_endpoint_per_second)?;
    config.credential_checks =
        l.positive("credential_checks", |s| s.credential_checks.take(), defaults.credential_checks)?;
    // Local development (`--dev`) delivers to receivers on this machine; production never does.
    config.webhooks.allow_private_targets =
        l.pick("webhook_allow_private_targets", |s| s.webhook_allow_private_targets.take(), config.dev);
    let webhooks = &mut config.webhooks;
    webhooks.max_attempts =
        l.positive("webhook_max_attempts", |s| s.webhook_max_attempts.take(), webhooks.max_attempts)?;
    webhooks.delete_after_failures = l.pick(
        "webhook_delete_after_failures",
        |s| s.webhook_delete_after_failures.take(),
        webhooks.delete_after_failures,
    );
    let hours = l.positive(
        "webhook_retention_hours",
        |s| s.webhook_retention_hours.take(),
        webhooks.retention.as_secs().div_ceil(3600),
    )?;
    webhooks.retention = Duration::from_secs(hours.saturating_mul(3600));
    config.requests.log_each_request = config.dev;
    config.dev_client_id = l.pick("dev_client_id", |s| s.dev_client_id.take(), defaults.dev_client_id);
    if config.dev_client_id.is_empty() || config.dev_client_id.len() > 255 {
        return Err(invalid("dev_client_id", "must be 1 to 255 characters"));
    }
    config.dev_client_secret = l.pick("dev_client_secret", |s| s.dev_client_secret.take().map(Some), None).map(Secret);
    if let Some(secret) = &config.dev_client_secret {
        if secret.0.chars().count() < MIN_GIVEN_SECRET_CHARS || secret.0.chars().any(char::is_whitespace) {
            return Err(invalid(
                "dev_client_secret",
                format!("must be at least {MIN_GIVEN_SECRET_CHARS} characters without spaces"),
            ));
        }
    }
    let directory = l.pick("backup_dir", |s| s.backup_dir.take().map(Some), None);
    let interval = l.positive("backup_interval", |s| s.backup_interval.take(), DEFAULT_BACKUP_INTERVAL_SECONDS)?;
    let keep = l.positive("backup_keep", |s| s.backup_keep.take(), DEFAULT_BACKUP_KEEP)?;
    let key = l.pick("backup_key", |s| s.backup_key.take().map(Some), None);
    // Shown as `backup_key` (where it came from is that setting's concern).
    let key_file = l.given.backup_key_file.take().or_else(|| l.file.backup_key_file.take());
    config.backup_key = backup_key_text(key, key_file)?.map(Secret);
    if let Some(directory) = directory {
        if config.backup_key.is_none() {
            return Err(invalid("backup_key", "must be set (or backup_key_file) when backup_dir is"));
        }
        if !directory.is_dir() {
            return Err(invalid("backup_dir", format!("{} is not a directory", directory.display())));
        }
        config.backups = Some(BackupSchedule { directory, interval: Duration::from_secs(interval), keep });
    }
    let checkpoint = l.positive(
        "audit_checkpoint_interval",
        |s| s.audit_checkpoint_interval.take(),
        defaults.audit_checkpoint_interval.as_secs(),
    )?;
    config.audit_checkpoint_interval = Duration::from_secs(checkpoint);
    let journal = &mut config.journal;
    journal.enabled = l.pick("journal", |s| s.journal.take(), journal.enabled);
    journal.max_entries = l.positive("journal_max_entries", |s| s.journal_max_entries.take(), journal.max_entries)?;
    let hours = l.positive(
        "journal_max_age_hours",
        |s| s.journal_max_age_hours.take(),
        journal.max_age.as_secs().div_ceil(3600),
    )?;
    journal.max_age = Duration::from_secs(hours.saturating_mul(3600));
    journal.max_per_second =
        l.positive("journal_max_per_second", |s| s.journal_max_per_second.take(), journal.max_per_second)?;
    Ok(Resolved { config, sources: l.sources })
}

/// The HSM token and key tokenvault looks for unless told otherwise.
pub const DEFAULT_PKCS11_TOKEN: &str = "tokenvault";
pub const DEFAULT_PKCS11_KEY_LABEL: &str = "tokenvault-master";

/// Scheduled backups, when `backup_dir` is set: hourly, the newest week's kept.
pub const DEFAULT_BACKUP_INTERVAL_SECONDS: u64 = 3600;
pub const DEFAULT_BACKUP_KEEP: usize = 168;

/// The backup key's base64 text, given or read from a file (not both), checked.
fn backup_key_text(given: Option<String>, file: Option<std::path::PathBuf>) -> Result<Option<String>, SettingError> {
    let text = match (given, file) {
        (Some(_), Some(_)) => return Err(invalid("backup_key", "give backup_key or backup_key_file, not both")),
        (Some(text), None) => text,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| invalid("backup_key_file", format!("{}: {e}", path.display())))?,
        (None, None) => return Ok(None),
    };
    let text = text.trim().to_owned();
    BackupKey::from_base64(&text).map_err(|_| invalid("backup_key", "must be base64 of exactly 32 bytes"))?;
    Ok(Some(text))
}

/// The backup key of `backup`, `backup verify` and `restore`: given, or read from a file.
pub fn backup_key(given: Option<String>, file: Option<std::path::PathBuf>) -> Result<Option<BackupKey>, SettingError> {
    Ok(backup_key_text(given, file)?.map(|text| BackupKey::from_base64(&text).expect("checked")))
}

/// The database (and master key) of a command other than `serve`, layered the same way: flag,
/// environment, the `--config` file, the default. Other settings of the file are not used, but a
/// file that does not parse is refused all the same.
pub fn resolve_database(given: Given, file: Option<FileSettings>) -> Result<ServeConfig, SettingError> {
    Layers { given, file: file.unwrap_or_default(), sources: Vec::new() }.database()
}

impl Resolved {
    /// The effective settings as TOML (usable as a config file), secrets masked, each line
    /// saying where its value came from.
    pub fn render(&self) -> String {
        let c = &self.config;
        let values: Vec<(&str, String)> = vec![
            ("listen", format!("{:?}", c.listen.to_string())),
            ("database_url", format!("{:?}", c.database_url.to_string())),
            (
                "encryption_key",
                c.encryption_key.as_ref().map_or_else(
                    || match c.database_url.sqlite_key_file() {
                        Some(path) => format!("# not set: generated into {}", path.display()),
                        None => "# not set".to_owned(),
                    },
                    |_| "\"****\"".to_owned(),
                ),
            ),
            (
                "pkcs11_module",
                c.hsm
                    .as_ref()
                    .map_or_else(|| "# not set".to_owned(), |h| format!("{:?}", h.module.display().to_string())),
            ),
            ("pkcs11_token", format!("{:?}", c.hsm.as_ref().map_or(DEFAULT_PKCS11_TOKEN, |h| h.token_label.as_str()))),
            ("pkcs11_pin", c.hsm.as_ref().map_or_else(|| "# not set".to_owned(), |_| "\"****\"".to_owned())),
            (
                "pkcs11_key_label",
                format!("{:?}", c.hsm.as_ref().map_or(DEFAULT_PKCS11_KEY_LABEL, |h| h.key_label.as_str())),
            ),
            ("unseal_with_shares", c.unseal_with_shares.to_string()),
            ("token_ttl", c.token_ttl_seconds.to_string()),
            ("issuer", format!("{:?}", c.issuer)),
            (
                "public_url",
                c.public_url.as_ref().map_or_else(|| "# not set: the request's Host".to_owned(), |u| format!("{u:?}")),
            ),
            ("pool_size", c.store.pool_size.to_string()),
            ("acquire_timeout_ms", c.store.acquire_timeout.as_millis().to_string()),
            ("dev", c.dev.to_string()),
            ("token_rate_limit", c.token_requests_per_minute.to_string()),
            ("rate_limit", c.api_calls_per_second.to_string()),
            ("max_in_flight", c.requests.max_in_flight.to_string()),
            ("request_timeout_ms", c.requests.request_timeout.as_millis().to_string()),
            ("seal_token_values", c.seal_token_values.to_string()),
            ("max_in_flight_per_address", c.requests.max_in_flight_per_address.to_string()),
            ("body_read_timeout_ms", c.requests.body_read_timeout.as_millis().to_string()),
            ("header_read_timeout_ms", c.connections.header_read_timeout.as_millis().to_string()),
            ("idle_timeout_ms", c.connections.idle_timeout.as_millis().to_string()),
            ("max_connections", c.connections.max_connections.to_string()),
            ("max_connections_per_address", c.connections.max_connections_per_address.to_string()),
            ("token_endpoint_rate", c.token_endpoint_per_second.to_string()),
            ("credential_checks", c.credential_checks.to_string()),
            ("webhook_allow_private_targets", c.webhooks.allow_private_targets.to_string()),
            ("webhook_max_attempts", c.webhooks.max_attempts.to_string()),
            ("webhook_delete_after_failures", c.webhooks.delete_after_failures.to_string()),
            ("webhook_retention_hours", (c.webhooks.retention.as_secs() / 3600).to_string()),
            ("dev_client_id", format!("{:?}", c.dev_client_id)),
            (
                "dev_client_secret",
                c.dev_client_secret
                    .as_ref()
                    .map_or_else(|| "# not set: a new one at every start".to_owned(), |_| "\"****\"".to_owned()),
            ),
            (
                "backup_dir",
                c.backups.as_ref().map_or_else(
                    || "# not set: no scheduled backups".to_owned(),
                    |b| format!("{:?}", b.directory.display().to_string()),
                ),
            ),
            (
                "backup_interval",
                c.backups.as_ref().map_or(DEFAULT_BACKUP_INTERVAL_SECONDS, |b| b.interval.as_secs()).to_string(),
            ),
            ("backup_keep", c.backups.as_ref().map_or(DEFAULT_BACKUP_KEEP, |b| b.keep).to_string()),
            ("backup_key", c.backup_key.as_ref().map_or_else(|| "# not set".to_owned(), |_| "\"****\"".to_owned())),
            ("audit_checkpoint_interval", c.audit_checkpoint_interval.as_secs().to_string()),
            ("journal", c.journal.enabled.to_string()),
            ("journal_max_entries", c.journal.max_entries.to_string()),
            ("journal_max_age_hours", (c.journal.max_age.as_secs() / 3600).to_string()),
            ("journal_max_per_second", c.journal.max_per_second.to_string()),
        ];
        let mut out = String::new();
        for ((name, value), (_, source)) in values.iter().zip(&self.sources) {
            if value.starts_with('#') {
                out.push_str(&format!("# {name} {}  (from: {source})\n", &value[2..]));
            } else {
                out.push_str(&format!("{name} = {value}  # from: {source}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let given = Given { listen: Some("127.0.0.1:9000".into()), ..Given::default() };
        let resolved = resolve(given, Some(file("listen = \"0.0.0.0:1\"\npool_size = 3\n"))).unwrap();
        assert_eq!(resolved.config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(resolved.config.store.pool_size, 3);
        assert_eq!(resolved.config.requests.max_in_flight, 1024);
        let sources: Vec<_> = resolved.sources.iter().map(|(n, s)| format!("{n}={s}")).collect();
        assert_eq!(&sources[..2], ["listen=flag or environment", "database_url=default"]);
        assert!(sources.contains(&"pool_size=config file".to_owned()));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let error = |given: Given, text: &str| resolve(given, Some(file(text))).err().unwrap().to_string();
        assert_eq!(
            error(Given::default(), "listen = \"nowhere\""),
            "listen: \"nowhere\" is not an address such as 127.0.0.1:8080"
        );
        assert_eq!(error(Given::default(), "pool_size = 0"), "pool_size: must be at least 1");
        assert_eq!(
            error(Given::default(), "encryption_key = \"c2hvcnQ=\""),
            "encryption_key: must be base64 of exactly 32 bytes"
        );
        assert_eq!(
            error(Given { database_url: Some("postgres://db/tv".into()), ..Given::default() }, ""),
            "encryption_key: must be set when the database is PostgreSQL (the same on every instance)"
        );
        assert_eq!(
            error(Given::default(), "database_url = \"mysql://x\""),
            "database_url: mysql://x is neither sqlite://PATH nor postgres://…"
        );
        assert!(toml::from_str::<FileSettings>("colour = 1").is_err());
    }

    #[test]
    fn private_webhook_targets_are_allowed_only_when_asked_or_with_dev() {
        let allowed =
            |given: Given, text: &str| resolve(given, Some(file(text))).unwrap().config.webhooks.allow_private_targets;
        assert!(!allowed(Given::default(), ""));
        assert!(allowed(Given::default(), "dev = true"));
        assert!(allowed(Given::default(), "webhook_allow_private_targets = true"));
        assert!(!allowed(Given { dev: Some(true), ..Given::default() }, "webhook_allow_private_targets = false"));
        assert!(allowed(Given { webhook_allow_private_targets: Some(true), ..Given::default() }, ""));
        let text = resolve(Given::default(), None).unwrap().render();
        assert!(text.contains("\nwebhook_allow_private_targets = false  # from: default\n"), "{text}");
        assert!(text.contains("\n# dev_client_secret not set: a new one at every start  (from: default)\n"), "{text}");
    }

    #[test]
    fn public_url_is_an_http_base_without_trailing_slash() {
        let url = |text: &str| resolve(Given::default(), Some(file(text))).map(|r| r.config.public_url);
        assert_eq!(url("").unwrap(), None);
        assert_eq!(
            url("public_url = \"https://vault.example.com/\"").unwrap().as_deref(),
            Some("https://vault.example.com")
        );
        assert_eq!(
            url("public_url = \"http://127.0.0.1:9/pre/fix/\"").unwrap().as_deref(),
            Some("http://127.0.0.1:9/pre/fix")
        );
        for bad in ["vault.example.com", "ftp://x", "https://x/?q=1", "https://x/#f", "https://u:p@x"] {
            assert_eq!(
                url(&format!("public_url = \"{bad}\"")).unwrap_err().to_string(),
                format!("public_url: {bad:?} is not an http(s) URL such as https://vault.example.com")
            );
        }
        let text = resolve(Given::default(), None).unwrap().render();
        assert!(text.contains("\n# public_url not set: the request's Host  (from: default)\n"), "{text}");
    }

    #[test]
    fn webhook_delivery_settings_default_to_dintero_and_layer() {
        let webhooks = |given: Given, text: &str| resolve(given, Some(file(text))).map(|r| r.config.webhooks);
        let defaults = webhooks(Given::default(), "").unwrap();
        assert_eq!((defaults.max_attempts, defaults.delete_after_failures), (5, 10));
        assert_eq!(defaults.retention, Duration::from_secs(7 * 86_400));
        let set = webhooks(
            Given { webhook_max_attempts: Some(3), ..Given::default() },
            "webhook_max_attempts = 8\nwebhook_delete_after_failures = 0\nwebhook_retention_hours = 2\n",
        )
        .unwrap();
        assert_eq!((set.max_attempts, set.delete_after_failures), (3, 0));
        assert_eq!(set.retention, Duration::from_secs(7200));
        let error = webhooks(Given::default(), "webhook_max_attempts = 0").err().unwrap();
        assert_eq!(error.to_string(), "webhook_max_attempts: must be at least 1");
        let error = webhooks(Given::default(), "webhook_retention_hours = 0").err().unwrap();
        assert_eq!(error.to_string(), "webhook_retention_hours: must be at least 1");
        let text = resolve(Given::default(), None).unwrap().render();
        assert!(text.contains("\nwebhook_max_attempts = 5  # from: default\nwebhook_delete_after_failures = 10  # from: default\nwebhook_retention_hours = 168  # from: default\n"), "{text}");
    }

    #[test]
    fn rendering_masks_secrets() {
        let given = Given {
            database_url: Some("postgres://u:hunter2@db/tv".into()),
            encryption_key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            ..Given::default()
        };
        let text = resolve(given, None).unwrap().render();
        assert!(text.contains("database_url = \"postgres://u:****@db/tv\"  # from: flag or environment\n"), "{text}");
        assert!(text.contains("encryption_key = \"****\"  # from: flag or environment\n"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("AAECAw"), "{text}");
        assert!(text.contains("max_in_flight = 1024  # from: default\n"), "{text}");
    }
}
