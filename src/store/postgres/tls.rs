//! TLS for PostgreSQL connections, configured the way libpq is: by `sslmode` and `sslrootcert`
//! (and optionally `sslcert` / `sslkey`) in the database URL, so that a `DATABASE_URL` written
//! for `psql` works here too.
//!
//! | `sslmode`          | TLS                                  | server certificate                     |
//! |--------------------|--------------------------------------|----------------------------------------|
//! | `disable`          | never                                | -                                      |
//! | `prefer` (default) | if the server offers it, else plain  | not checked; chain checked if `sslrootcert` is given |
//! | `require`          | always                               | not checked; chain checked if `sslrootcert` is given |
//! | `verify-ca`        | always                               | chain checked against `sslrootcert`    |
//! | `verify-full`      | always                               | chain and host name checked            |
//!
//! `sslrootcert` is a PEM file of trusted roots, or `system` for the bundled Mozilla roots
//! (`webpki-roots`); as in libpq, `system` implies `verify-full` and refuses weaker modes.
//! Unlike libpq, nothing is read from `~/.postgresql/`: `verify-ca` and `verify-full` need an
//! explicit `sslrootcert`, and a client certificate needs both `sslcert` and `sslkey`. Unlike
//! libpq, `prefer` does not retry in plain text after a failed TLS handshake.
//!
//! "Not checked" is libpq's `require`: the connection is encrypted and the handshake signatures
//! are verified, but any certificate is accepted, so an active attacker in the path can still
//! impersonate the server. Only `verify-full` stops that.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, so [`translate`] takes
//! these parameters out of the URL before handing the rest to it. The TLS stack is rustls with
//! the *ring* provider, chosen explicitly (no process-wide default provider is involved).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::url::redact_url;
use crate::store::{StoreError, StoreResult};

/// libpq's `sslmode` (`allow` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where trusted root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// The Mozilla roots bundled through `webpki-roots` (`sslrootcert=system`).
    System,
    /// A PEM file of one or more certificates.
    File(PathBuf),
}

/// What a URL asks of TLS, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    pub mode: SslMode,
    pub roots: Option<RootCerts>,
    /// `sslcert` and `sslkey`: a client certificate chain and its private key, PEM.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Any certificate (libpq's `require` without a root file); handshake signatures still are.
    Nothing,
    /// Chains to a trusted root (`verify-ca`).
    Chain,
    /// Chains to a trusted root and names the host connected to (`verify-full`).
    ChainAndHost,
}

impl TlsPolicy {
    fn check(&self) -> Check {
        match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require if self.roots.is_none() => Check::Nothing,
            SslMode::Disable | SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndHost,
        }
    }

    /// The connector for this policy; reads `sslrootcert` (and `sslcert` / `sslkey`) now, so
    /// that a bad file fails at start-up rather than on the first connection.
    pub(crate) fn connector(&self) -> Result<MakeTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?;
        // With `disable` nothing is ever used, so no file is read (as libpq).
        let roots = match (&self.roots, self.mode) {
            (_, SslMode::Disable) | (None, _) => None,
            (Some(roots), _) => Some(Arc::new(load_roots(roots)?)),
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.check(), roots) {
            (Check::ChainAndHost, Some(roots)) => WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?,
            (Check::Chain, Some(roots)) => Arc::new(LibpqVerifier::new(Some(roots), &provider)),
            (Check::Nothing, _) => Arc::new(LibpqVerifier::new(None, &provider)),
            // Never used: `disable` makes no TLS connection.
            (_, None) if self.mode == SslMode::Disable => Arc::new(LibpqVerifier::new(None, &provider)),
            (_, None) => return Err(format!("sslmode={} needs sslrootcert", mode_name(self.mode))),
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let mut config = match (&self.client_cert, self.mode) {
            (Some((cert, key)), mode) if mode != SslMode::Disable => {
                let chain = load_certs("sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_slice(&read_file("sslkey", key)?)
                    .map_err(|e| format!("sslkey {}: no usable private key: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("sslcert/sslkey: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        // As libpq 17 does; needed for `sslnegotiation=direct`, ignored by older servers.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeTls(MakeRustlsConnect::new(config)))
    }
}

/// Takes libpq's TLS parameters out of a `postgres://` / `postgresql://` URL: the rest, parsed
/// by tokio-postgres, and what they ask. Reads no file (see [`TlsPolicy::connector`]).
pub(crate) fn translate(url: &str) -> Result<(tokio_postgres::Config, TlsPolicy), String> {
    let Some(after_scheme) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return Err("expected a postgres:// or postgresql:// URL".into());
    };
    // Where the query starts, found as tokio-postgres finds it: after the credentials, which
    // run to the first `@` (a password may contain `?`).
    let body = after_scheme.find('@').map_or(0, |at| at + 1);
    let (base, query) = match after_scheme[body..].find('?') {
        Some(q) => {
            let q = url.len() - after_scheme.len() + body + q;
            (&url[..q], &url[q + 1..])
        }
        None => (url, ""),
    };

    let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let Some((raw_key, raw_value)) = pair.split_once('=') else {
            kept.push(pair); // malformed: tokio-postgres says why
            continue;
        };
        let name = decode(raw_key)?;
        let slot = match name.as_str() {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            "sslcert" => &mut cert,
            "sslkey" => &mut key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(decode(raw_value).map_err(|e| format!("{name}: {e}"))?);
    }

    let root = match root.as_deref() {
        None => None,
        Some("") => return Err("sslrootcert is empty (expected a PEM file or `system`)".into()),
        Some("system") => Some(RootCerts::System),
        Some(path) => Some(RootCerts::File(PathBuf::from(path))),
    };
    let mode = match mode.as_deref() {
        // libpq: `sslrootcert=system` makes `verify-full` the default.
        None if root == Some(RootCerts::System) => SslMode::VerifyFull,
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some("allow") => return Err("sslmode=allow is not supported (use prefer, or disable)".into()),
        Some(other) => {
            return Err(format!(
                "sslmode: unknown value {other:?} (expected disable, prefer, require, verify-ca or verify-full)"
            ))
        }
    };
    if root == Some(RootCerts::System) && mode != SslMode::VerifyFull {
        // Anyone can get a publicly trusted certificate for a name of their own.
        return Err(format!("sslmode={} may not be used with sslrootcert=system (use verify-full)", mode_name(mode)));
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert: the path of a PEM file with the CA certificate(s) to trust, \
             or `system` for the public web PKI (verify-full only)",
            mode_name(mode)
        ));
    }
    let client_cert = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => {
            Some((PathBuf::from(cert), PathBuf::from(key)))
        }
        _ => return Err("sslcert and sslkey must be given together, each the path of a PEM file".into()),
    };

    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        // The source says which parameter ("unknown option `sslcrl`").
        match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }
    })?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    Ok((config, TlsPolicy { mode, roots: root, client_cert }))
}

/// [`translate`] and [`TlsPolicy::connector`], with errors naming the (redacted) URL: what every
/// connection of the PostgreSQL store starts from.
pub(super) fn parse_url(url: &str) -> StoreResult<(tokio_postgres::Config, MakeTls)> {
    translate(url)
        .and_then(|(config, policy)| Ok((config, policy.connector()?)))
        .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL {}: {e}", redact_url(url))))
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

fn decode(raw: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| format!("invalid percent-encoding: {e}"))
}

fn read_file(parameter: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{parameter} {}: cannot read it: {e}", path.display()))
}

fn load_certs(parameter: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read_file(parameter, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{parameter} {}: not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{parameter} {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn load_roots(roots: &RootCerts) -> Result<RootCertStore, String> {
    match roots {
        RootCerts::System => Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        RootCerts::File(path) => {
            let mut store = RootCertStore::empty();
            for cert in load_certs("sslrootcert", path)? {
                store.add(cert).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            Ok(store)
        }
    }
}

/// The server-certificate check of `require` (none) and `verify-ca` (the chain, not the name).
/// The handshake signatures are verified either way, so the peer at least holds the key of the
/// certificate it shows.
#[derive(Debug)]
struct LibpqVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl LibpqVerifier {
    fn new(roots: Option<Arc<RootCertStore>>, provider: &CryptoProvider) -> Self {
        Self { roots, algorithms: provider.signature_verification_algorithms }
    }
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The connector every PostgreSQL connection of the store uses (pool, migrations,
/// export/import): tokio-postgres-rustls, plus Unix sockets.
#[derive(Clone)]
pub(crate) struct MakeTls(MakeRustlsConnect);

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        // A Unix socket has no host name: tokio-postgres passes "" and never starts TLS on it
        // (PostgreSQL refuses TLS there), but asks for a connector all the same, and "" is no
        // valid server name.
        let hostname = if hostname.is_empty() { "unix-socket.invalid" } else { hostname };
        MakeTlsConnect::<S>::make_tls_connect(&mut self.0, hostname)
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::{Host, SslMode as PgSslMode};

    use super::*;

    fn policy(mode: SslMode, roots: Option<RootCerts>) -> TlsPolicy {
        TlsPolicy { mode, roots, client_cert: None }
    }

    fn file(path: &str) -> Option<RootCerts> {
        Some(RootCerts::File(PathBuf::from(path)))
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_keeps_the_rest_of_the_url() {
        let (config, tls) = translate("postgres://u:p%3Fw@db.example:6543/tv?application_name=x").unwrap();
        assert_eq!(tls, policy(SslMode::Prefer, None));
        assert_eq!(tls.check(), Check::Nothing);
        assert_eq!(config.get_ssl_mode(), PgSslMode::Prefer);
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_password(), Some(&b"p?w"[..]));
        assert_eq!(config.get_hosts(), [Host::Tcp("db.example".into())]);
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_dbname(), Some("tv"));
        assert_eq!(config.get_application_name(), Some("x"));
    }

    #[test]
    fn every_sslmode_translates() {
        let cases = [
            ("disable", SslMode::Disable, PgSslMode::Disable, Check::Nothing),
            ("prefer", SslMode::Prefer, PgSslMode::Prefer, Check::Nothing),
            ("require", SslMode::Require, PgSslMode::Require, Check::Nothing),
        ];
        for (name, mode, wire, check) in cases {
            let (config, tls) = translate(&format!("postgresql://db/tv?sslmode={name}")).unwrap();
            assert_eq!((tls.mode, config.get_ssl_mode(), tls.check()), (mode, wire, check), "{name}");
        }
        let cases = [
            ("verify-ca", SslMode::VerifyCa, Check::Chain),
            ("verify-full", SslMode::VerifyFull, Check::ChainAndHost),
            // libpq: a root file makes `require` (and `prefer`) check the chain.
            ("require", SslMode::Require, Check::Chain),
            ("prefer", SslMode::Prefer, Check::Chain),
        ];
        for (name, mode, check) in cases {
            let (config, tls) = translate(&format!("postgres://db/tv?sslmode={name}&sslrootcert=/ca.pem")).unwrap();
            assert_eq!(tls, policy(mode, file("/ca.pem")), "{name}");
            assert_eq!(tls.check(), check, "{name}");
            let wire = if mode == SslMode::Prefer { PgSslMode::Prefer } else { PgSslMode::Require };
            assert_eq!(config.get_ssl_mode(), wire, "{name}");
        }
    }

    #[test]
    fn tls_parameters_are_taken_out_wherever_they_stand() {
        let url = "postgres://u@h1:5432,h2/tv?sslrootcert=%2Fetc%2Fca%20dir%2Froot.pem&connect_timeout=7\
                   &sslmode=verify-full&target_session_attrs=read-write";
        let (config, tls) = translate(url).unwrap();
        assert_eq!(tls, policy(SslMode::VerifyFull, file("/etc/ca dir/root.pem")));
        assert_eq!(config.get_connect_timeout(), Some(&std::time::Duration::from_secs(7)));
        assert_eq!(config.get_target_session_attrs(), tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        assert_eq!(config.get_hosts().len(), 2);
        // The last value wins, as in tokio-postgres.
        let (_, tls) = translate("postgres://db/tv?sslmode=disable&sslmode=require").unwrap();
        assert_eq!(tls.mode, SslMode::Require);
        // Only TLS parameters in the query: nothing is left of it.
        let (config, _) = translate("postgres://db/tv?sslmode=require").unwrap();
        assert_eq!(config.get_dbname(), Some("tv"));
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let (config, tls) = translate("postgres://db/tv?sslrootcert=system").unwrap();
        assert_eq!(tls, policy(SslMode::VerifyFull, Some(RootCerts::System)));
        assert_eq!(config.get_ssl_mode(), PgSslMode::Require);
        let (_, tls) = translate("postgres://db/tv?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(tls.check(), Check::ChainAndHost);
        for weak in ["disable", "prefer", "require", "verify-ca"] {
            let error = translate(&format!("postgres://db/tv?sslmode={weak}&sslrootcert=system")).unwrap_err();
            assert!(error.contains(&format!("sslmode={weak} may not be used with sslrootcert=system")), "{error}");
        }
    }

    #[test]
    fn client_certificates_need_both_files() {
        let (_, tls) = translate("postgres://db/tv?sslmode=require&sslcert=/c.pem&sslkey=/k.pem").unwrap();
        assert_eq!(tls.client_cert, Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))));
        for url in
            ["postgres://db/tv?sslcert=/c.pem", "postgres://db/tv?sslkey=/k.pem", "postgres://db/tv?sslcert=&sslkey="]
        {
            assert!(translate(url).unwrap_err().contains("sslcert and sslkey must be given together"), "{url}");
        }
    }

    #[test]
    fn bad_tls_parameters_are_named() {
        let cases = [
            ("postgres://db/tv?sslmode=verify_full", "sslmode: unknown value \"verify_full\""),
            ("postgres://db/tv?sslmode=", "sslmode: unknown value \"\""),
            ("postgres://db/tv?sslmode=allow", "sslmode=allow is not supported"),
            ("postgres://db/tv?sslmode=verify-ca", "sslmode=verify-ca needs sslrootcert"),
            ("postgres://db/tv?sslmode=verify-full", "sslmode=verify-full needs sslrootcert"),
            ("postgres://db/tv?sslmode=require&sslrootcert=", "sslrootcert is empty"),
            ("postgres://db/tv?sslmode=%FF", "sslmode: invalid percent-encoding"),
            ("host=db dbname=tv", "expected a postgres:// or postgresql:// URL"),
            // Everything else is still tokio-postgres's to judge.
            ("postgres://db/tv?sslmode=require&sslcrl=/x", "unknown option `sslcrl`"),
        ];
        for (url, expected) in cases {
            let error = translate(url).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn unreadable_or_empty_root_files_fail_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let not_pem = dir.path().join("junk.pem");
        std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap();
        for (path, expected) in
            [(&missing, "cannot read it"), (&empty, "no PEM certificate in it"), (&not_pem, "not a PEM file")]
        {
            let url = format!("postgres://db/tv?sslmode=verify-full&sslrootcert={}", path.display());
            let Err(StoreError::Internal(error)) = parse_url(&url) else { panic!("{url} was accepted") };
            assert!(error.contains(&format!("sslrootcert {}: {expected}", path.display())), "{error}");
        }
        // `disable` reads nothing, as libpq.
        let url = format!("postgres://db/tv?sslmode=disable&sslrootcert={}", missing.display());
        assert!(parse_url(&url).is_ok());
        // Passwords stay out of the message.
        let url = format!("postgres://u:secret@db/tv?sslmode=verify-ca&sslrootcert={}", missing.display());
        let Err(error) = parse_url(&url) else { panic!("accepted") };
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn connectors_build_for_every_mode() {
        assert!(translate("postgres://db/tv?sslrootcert=system").unwrap().1.connector().is_ok());
        assert!(translate("postgres://db/tv?sslmode=require").unwrap().1.connector().is_ok());
        let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        if Path::new(snakeoil).exists() {
            for mode in ["prefer", "require", "verify-ca", "verify-full"] {
                let url = format!("postgres://db/tv?sslmode={mode}&sslrootcert={snakeoil}");
                assert!(parse_url(&url).is_ok(), "{mode}");
            }
        }
        // A client certificate and its key (readable only where the tests run as root).
        let snakeoil_key = "/etc/ssl/private/ssl-cert-snakeoil.key";
        if std::fs::read(snakeoil_key).is_ok() {
            let url = format!(
                "postgres://db/tv?sslmode=verify-full&sslrootcert={snakeoil}&sslcert={snakeoil}&sslkey={snakeoil_key}"
            );
            assert!(parse_url(&url).is_ok());
        }
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "nothing here").unwrap();
        if Path::new(snakeoil).exists() {
            let url = format!("postgres://db/tv?sslmode=require&sslcert={snakeoil}&sslkey={}", key.display());
            let Err(error) = parse_url(&url) else { panic!("accepted") };
            assert!(error.to_string().contains("sslkey"), "{error}");
        }
    }

    #[test]
    fn unix_sockets_get_a_connector() {
        let (config, tls) = translate("postgres://u@%2Frun%2Fpostgresql/tv").unwrap();
        assert!(matches!(config.get_hosts(), [Host::Unix(_)]));
        let mut connector = tls.connector().unwrap();
        type Tcp = tokio::net::TcpStream;
        assert!(<MakeTls as MakeTlsConnect<Tcp>>::make_tls_connect(&mut connector, "").is_ok());
        assert!(<MakeTls as MakeTlsConnect<Tcp>>::make_tls_connect(&mut connector, "127.0.0.1").is_ok());
    }
}
