//! Where webhook deliveries may go. A subscription's URL is chosen by whoever holds
//! `admin:hooks`/`write:hooks`; without these checks the server would POST, with retries, to
//! whatever it can reach: its own loopback services, the private network, a cloud metadata
//! endpoint (a blind SSRF). So production accounts must use `https`, and loopback, private,
//! link-local and other internal addresses are refused when a subscription is created (its
//! host name resolved then) and again on every delivery, after resolution: the delivery client
//! resolves names through [`GuardedResolver`], which drops forbidden addresses, so a name that
//! resolves differently later (DNS rebinding) gains nothing. `--webhook-allow-private-targets`
//! lifts the address rule for local development (see README, "Configuration").

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use crate::domain::webhook_target::TargetError;

/// The `user-agent` of every call to a target: Dintero's deliveries say `Dintero-Hook/<hash>`.
pub const USER_AGENT: &str = concat!("Dintero-Hook/tokenvault-", env!("CARGO_PKG_VERSION"));
use crate::domain::webhook_target::{allowed, check_url_form, is_forbidden, is_localhost_name, literal_ip, Url};
use crate::domain::AccountId;

/// How long a subscription's host name may take to resolve when it is created.
const CREATE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which targets webhook deliveries may reach; the same for subscriptions and deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Also allow loopback, private and other internal addresses (local development only;
    /// `--webhook-allow-private-targets`, on with `serve --dev`).
    pub allow_private: bool,
}

/// The error a delivery's name resolution fails with when every address it found is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("the host name resolves only to loopback, private, link-local or other internal addresses")]
pub struct ForbiddenResolution;

impl TargetPolicy {
    /// At subscription time: refuses an IP-literal host that is forbidden, and a host name that
    /// is `localhost` or resolves to any forbidden address. A name that does not resolve (yet)
    /// is accepted; every delivery checks the addresses again.
    pub async fn check_destination(self, url: &str) -> Result<(), TargetError> {
        if self.allow_private {
            return Ok(());
        }
        let url = Url::parse(url).map_err(|_| TargetError::NotHttp)?;
        let name = url.host_str().ok_or(TargetError::NotHttp)?;
        if let Some(ip) = literal_ip(&url) {
            return allowed(ip);
        }
        if is_localhost_name(name) {
            return Err(TargetError::Forbidden);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let resolved = tokio::time::timeout(CREATE_LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port))).await;
        match resolved {
            Ok(Ok(addrs)) => addrs.map(|addr| addr.ip()).try_for_each(allowed),
            _ => Ok(()),
        }
    }

    /// The HTTP client for calls to targets this policy admits (webhook deliveries, session
    /// callbacks): no redirects (a 3xx is a failed attempt: a redirect could lead anywhere), no
    /// proxy from the environment (the proxy would resolve the name, past the guarded resolver),
    /// and, unless private targets are allowed, names resolved through [`GuardedResolver`].
    pub fn client(self, timeout: Duration) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(USER_AGENT);
        if !self.allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(GuardedResolver));
        }
        builder.build().expect("a default HTTP client builds")
    }

    /// At delivery time, before anything is sent: the form again (for subscriptions stored
    /// before these rules) and an IP-literal host, which the HTTP client does not resolve and
    /// [`GuardedResolver`] therefore never sees.
    pub fn check_delivery(self, url: &str, account: &AccountId) -> Result<(), TargetError> {
        let parsed = check_url_form(url, account)?;
        if self.allow_private {
            return Ok(());
        }
        // Names, `localhost` included, are left to the resolver: it sees every address.
        literal_ip(&parsed).map_or(Ok(()), allowed)
    }
}

/// The delivery client's name resolver (unless private targets are allowed): the system's
/// resolution with every forbidden address dropped, and an error when none is left. Deliveries
/// thus connect only to addresses checked after resolution, whatever the name resolved to when
/// the subscription was made.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let usable: Vec<SocketAddr> = found.filter(|addr| !is_forbidden(addr.ip())).collect();
            if usable.is_empty() {
                return Err(Box::new(ForbiddenResolution) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn destinations_are_checked_unless_private_targets_are_allowed() {
        let strict = TargetPolicy::default();
        let lax = TargetPolicy { allow_private: true };
        for url in [
            "http://127.0.0.1:9/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::ffff:7f00:1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
        ] {
            assert_eq!(strict.check_destination(url).await, Err(TargetError::Forbidden), "{url}");
            assert_eq!(lax.check_destination(url).await, Ok(()), "{url}");
        }
        assert_eq!(strict.check_destination("https://1.1.1.1/x").await, Ok(()));
        // A name that does not resolve is left to the delivery-time check.
        assert_eq!(strict.check_destination("https://hooks.invalid/x").await, Ok(()));
    }

    #[test]
    fn deliveries_check_literal_hosts_and_the_form() {
        let test = AccountId::parse("aid", "T12345678").unwrap();
        let production = AccountId::parse("aid", "P12345678").unwrap();
        let strict = TargetPolicy::default();
        assert_eq!(strict.check_delivery("http://10.1.2.3/x", &test), Err(TargetError::Forbidden));
        assert_eq!(strict.check_delivery("http://[::ffff:a9fe:a9fe]/x", &test), Err(TargetError::Forbidden));
        assert_eq!(strict.check_delivery("http://1.1.1.1/x", &production), Err(TargetError::HttpsRequired));
        assert_eq!(strict.check_delivery("https://hooks.example.com/x", &production), Ok(()));
        assert_eq!(TargetPolicy { allow_private: true }.check_delivery("http://10.1.2.3/x", &test), Ok(()));
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_addresses() {
        let error = GuardedResolver.resolve("localhost".parse().unwrap()).await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "the host name resolves only to loopback, private, link-local or other internal addresses"
        );
    }
}
