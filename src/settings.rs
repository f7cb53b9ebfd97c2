//! The settings of `tokenvault serve`, layered: command-line flags, then `TOKENVAULT_*`
//! environment variables, then an optional TOML file, then defaults. Every bad value stops
//! start-up with a message naming the setting; `tokenvault config` shows the result and where
//! each value came from, secrets masked.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::clients::CredentialChecks;
use crate::config::{self, redact_url, ServeConfig};
use crate::crypto::TokenCipher;
use crate::http::server::ConnectionLimits;

/// Values given on the command line or in the environment (clap merges those two); `None`
/// where neither gave one.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub encryption_key: Option<String>,
    pub token_ttl: Option<u64>,
    pub issuer: Option<String>,
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
}

/// The TOML file: the same settings, named as in the configuration table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub encryption_key: Option<String>,
    pub token_ttl: Option<u64>,
    pub issuer: Option<String>,
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

fn pick<T>(
    sources: &mut Vec<(&'static str, Source)>,
    name: &'static str,
    given: Option<T>,
    file: Option<T>,
    default: T,
) -> T {
    let (value, source) = match (given, file) {
        (Some(value), _) => (value, Source::FlagOrEnvironment),
        (None, Some(value)) => (value, Source::File),
        (None, None) => (default, Source::Default),
    };
    sources.push((name, source));
    value
}

/// [`pick`] for a setting whose 0 would disable the server (a limit, a timeout).
fn pick_positive<T: PartialEq + From<u8>>(
    sources: &mut Vec<(&'static str, Source)>,
    name: &'static str,
    given: Option<T>,
    file: Option<T>,
    default: T,
) -> Result<T, SettingError> {
    let value = pick(sources, name, given, file, default);
    if value == T::from(0) {
        return Err(invalid(name, "must be at least 1"));
    }
    Ok(value)
}

/// Layers the given values over the file over the defaults, and checks every value.
pub fn resolve(given: Given, file: Option<FileSettings>) -> Result<Resolved, SettingError> {
    let file = file.unwrap_or_default();
    let mut s = Vec::new();
    let listen = pick(&mut s, "listen", given.listen, file.listen, config::DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| invalid("listen", format!("{listen:?} is not an address such as 127.0.0.1:8080")))?;
    let database_url =
        pick(&mut s, "database_url", given.database_url, file.database_url, config::DEFAULT_DATABASE_URL.to_owned());
    let is_postgres = database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    if !is_postgres && config::sqlite_path(&database_url).is_none() {
        return Err(invalid(
            "database_url",
            format!("{} is neither sqlite://PATH nor postgres://…", redact_url(&database_url)),
        ));
    }
    let encryption_key = match (given.encryption_key, file.encryption_key) {
        (Some(key), _) => {
            s.push(("encryption_key", Source::FlagOrEnvironment));
            Some(key)
        }
        (None, Some(key)) => {
            s.push(("encryption_key", Source::File));
            Some(key)
        }
        (None, None) => {
            s.push(("encryption_key", Source::Default));
            None
        }
    };
    if let Some(key) = &encryption_key {
        TokenCipher::from_base64(key).map_err(|_| invalid("encryption_key", "must be base64 of exactly 32 bytes"))?;
    } else if is_postgres {
        return Err(invalid(
            "encryption_key",
            "must be set when the database is PostgreSQL (the same on every instance)",
        ));
    }
    let token_ttl = pick(&mut s, "token_ttl", given.token_ttl, file.token_ttl, config::DEFAULT_TOKEN_TTL_SECONDS);
    if token_ttl == 0 {
        return Err(invalid("token_ttl", "must be at least 1 second"));
    }
    let issuer = pick(&mut s, "issuer", given.issuer, file.issuer, config::DEFAULT_ISSUER.to_owned());
    if issuer.is_empty() {
        return Err(invalid("issuer", "must not be empty"));
    }
    let pool_size = pick_positive(&mut s, "pool_size", given.pool_size, file.pool_size, 8)?;
    let acquire_timeout_ms =
        pick_positive(&mut s, "acquire_timeout_ms", given.acquire_timeout_ms, file.acquire_timeout_ms, 5000)?;
    let dev = pick(&mut s, "dev", given.dev, file.dev, false);
    let token_rate_limit = pick(&mut s, "token_rate_limit", given.token_rate_limit, file.token_rate_limit, 60);
    if token_rate_limit == 0 {
        return Err(invalid("token_rate_limit", "must be at least 1 (token requests per client and minute)"));
    }
    let rate_limit = pick(&mut s, "rate_limit", given.rate_limit, file.rate_limit, 0);
    let max_in_flight = pick_positive(&mut s, "max_in_flight", given.max_in_flight, file.max_in_flight, 1024)?;
    let request_timeout_ms =
        pick_positive(&mut s, "request_timeout_ms", given.request_timeout_ms, file.request_timeout_ms, 30_000)?;
    let seal_token_values = pick(&mut s, "seal_token_values", given.seal_token_values, file.seal_token_values, false);
    let requests = crate::http::RequestSettings::default();
    let connections = ConnectionLimits::default();
    let max_in_flight_per_address = pick_positive(
        &mut s,
        "max_in_flight_per_address",
        given.max_in_flight_per_address,
        file.max_in_flight_per_address,
        requests.max_in_flight_per_address,
    )?;
    let body_read_timeout_ms = pick_positive(
        &mut s,
        "body_read_timeout_ms",
        given.body_read_timeout_ms,
        file.body_read_timeout_ms,
        requests.body_read_timeout.as_millis() as u64,
    )?;
    let header_read_timeout_ms = pick_positive(
        &mut s,
        "header_read_timeout_ms",
        given.header_read_timeout_ms,
        file.header_read_timeout_ms,
        connections.header_read_timeout.as_millis() as u64,
    )?;
    let idle_timeout_ms = pick_positive(
        &mut s,
        "idle_timeout_ms",
        given.idle_timeout_ms,
        file.idle_timeout_ms,
        connections.idle_timeout.as_millis() as u64,
    )?;
    let max_connections = pick_positive(
        &mut s,
        "max_connections",
        given.max_connections,
        file.max_connections,
        connections.max_connections,
    )?;
    let max_connections_per_address = pick_positive(
        &mut s,
        "max_connections_per_address",
        given.max_connections_per_address,
        file.max_connections_per_address,
        connections.max_connections_per_address,
    )?;
    let token_endpoint_rate = pick_positive(
        &mut s,
        "token_endpoint_rate",
        given.token_endpoint_rate,
        file.token_endpoint_rate,
        config::DEFAULT_TOKEN_ENDPOINT_PER_SECOND,
    )?;
    let credential_checks = pick_positive(
        &mut s,
        "credential_checks",
        given.credential_checks,
        file.credential_checks,
        CredentialChecks::default_at_once(),
    )?;
    // Local development (`--dev`) delivers to receivers on this machine; production never does.
    let webhook_allow_private_targets = pick(
        &mut s,
        "webhook_allow_private_targets",
        given.webhook_allow_private_targets,
        file.webhook_allow_private_targets,
        dev,
    );

    let mut config = ServeConfig::new(database_url);
    config.listen = listen;
    config.encryption_key = encryption_key;
    config.token_ttl_seconds = token_ttl;
    config.issuer = issuer;
    config.pool_size = pool_size;
    config.acquire_timeout = Duration::from_millis(acquire_timeout_ms);
    config.dev = dev;
    config.token_requests_per_minute = token_rate_limit;
    config.api_calls_per_second = rate_limit;
    config.max_in_flight = max_in_flight;
    config.request_timeout = Duration::from_millis(request_timeout_ms);
    config.seal_token_values = seal_token_values;
    config.max_in_flight_per_address = max_in_flight_per_address;
    config.body_read_timeout = Duration::from_millis(body_read_timeout_ms);
    config.connections = ConnectionLimits {
        header_read_timeout: Duration::from_millis(header_read_timeout_ms),
        idle_timeout: Duration::from_millis(idle_timeout_ms),
        max_connections,
        max_connections_per_address,
    };
    config.token_endpoint_per_second = token_endpoint_rate;
    config.credential_checks = credential_checks;
    config.webhooks.allow_private_targets = webhook_allow_private_targets;
    Ok(Resolved { config, sources: s })
}

impl Resolved {
    /// The effective settings as TOML (usable as a config file), secrets masked, each line
    /// saying where its value came from.
    pub fn render(&self) -> String {
        let c = &self.config;
        let values: Vec<(&str, String)> = vec![
            ("listen", format!("{:?}", c.listen.to_string())),
            ("database_url", format!("{:?}", redact_url(&c.database_url))),
            (
                "encryption_key",
                c.encryption_key.as_ref().map_or_else(
                    || match c.sqlite_key_file() {
                        Some(path) => format!("# not set: generated into {}", path.display()),
                        None => "# not set".to_owned(),
                    },
                    |_| "\"****\"".to_owned(),
                ),
            ),
            ("token_ttl", c.token_ttl_seconds.to_string()),
            ("issuer", format!("{:?}", c.issuer)),
            ("pool_size", c.pool_size.to_string()),
            ("acquire_timeout_ms", c.acquire_timeout.as_millis().to_string()),
            ("dev", c.dev.to_string()),
            ("token_rate_limit", c.token_requests_per_minute.to_string()),
            ("rate_limit", c.api_calls_per_second.to_string()),
            ("max_in_flight", c.max_in_flight.to_string()),
            ("request_timeout_ms", c.request_timeout.as_millis().to_string()),
            ("seal_token_values", c.seal_token_values.to_string()),
            ("max_in_flight_per_address", c.max_in_flight_per_address.to_string()),
            ("body_read_timeout_ms", c.body_read_timeout.as_millis().to_string()),
            ("header_read_timeout_ms", c.connections.header_read_timeout.as_millis().to_string()),
            ("idle_timeout_ms", c.connections.idle_timeout.as_millis().to_string()),
            ("max_connections", c.connections.max_connections.to_string()),
            ("max_connections_per_address", c.connections.max_connections_per_address.to_string()),
            ("token_endpoint_rate", c.token_endpoint_per_second.to_string()),
            ("credential_checks", c.credential_checks.to_string()),
            ("webhook_allow_private_targets", c.webhooks.allow_private_targets.to_string()),
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
        assert_eq!(resolved.config.pool_size, 3);
        assert_eq!(resolved.config.max_in_flight, 1024);
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
        assert!(text.ends_with("webhook_allow_private_targets = false  # from: default\n"), "{text}");
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
