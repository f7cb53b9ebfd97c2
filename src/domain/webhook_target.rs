//! Where webhook deliveries may go, as rules on a URL and an address: production accounts use
//! `https`, and loopback, private, link-local and other internal addresses are never a target
//! unless private targets are allowed (a blind SSRF otherwise). The checks that resolve names,
//! at subscription and after resolution on every delivery, are in `service::webhook_targets`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use url::Url;

use super::AccountId;

/// Why a webhook URL is refused. The texts complete "config.url: …" and "the URL …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be an http or https URL")]
    NotHttp,
    /// Production accounts (`P…`) must use `https`: deliveries carry card-token data.
    #[error("must be an https URL (http is allowed only for test accounts)")]
    HttpsRequired,
    #[error("must not point to a loopback, private, link-local or other internal address")]
    Forbidden,
}

/// Checks a URL's form: `http`/`https` with a host, and `https` unless the account is a test
/// account. Needs no network; [`TargetPolicy::check_destination`] looks at the address.
pub fn check_url_form(url: &str, account: &AccountId) -> Result<Url, TargetError> {
    // Spelled out as `http://` or `https://`: the URL parser would also take `https:/host/…` or
    // `https:host`, which are not what clients mean and read differently elsewhere.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(TargetError::NotHttp);
    }
    let parsed = Url::parse(url).map_err(|_| TargetError::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(TargetError::NotHttp);
    }
    if parsed.scheme() == "http" && !account.is_test() {
        return Err(TargetError::HttpsRequired);
    }
    Ok(parsed)
}

/// The host of `url` when it is an IP address (the URL parser has already turned forms such as
/// `2130706433` or `0x7f.1` into dotted IPv4), else `None`.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

pub fn allowed(ip: IpAddr) -> Result<(), TargetError> {
    if is_forbidden(ip) {
        Err(TargetError::Forbidden)
    } else {
        Ok(())
    }
}

/// `localhost` and its subdomains always mean loopback (RFC 6761).
pub fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether webhooks may not reach `ip`: anything but a global unicast address. IPv6 forms that
/// embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address; the deprecated
/// IPv4-compatible form and Teredo are refused outright.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_forbidden_v4(ip),
        IpAddr::V6(ip) => is_forbidden_v6(ip),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                    // "this network", 0.0.0.0 unspecified
        || a == 10                            // private (RFC 1918)
        || (a == 100 && (64..128).contains(&b)) // shared address space, CGNAT (RFC 6598)
        || a == 127                           // loopback
        || (a == 169 && b == 254)             // link-local, cloud metadata (169.254.169.254)
        || (a == 172 && (16..32).contains(&b)) // private (RFC 1918)
        || (a == 192 && b == 0 && c == 0)     // IETF protocol assignments (RFC 6890)
        || (a == 192 && b == 0 && c == 2)     // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99)   // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)             // private (RFC 1918)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || (a == 198 && b == 51 && c == 100)  // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113)   // documentation (TEST-NET-3)
        || a >= 224 // multicast, reserved (240/4) and broadcast (255.255.255.255)
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4); // ::ffff:a.b.c.d
    }
    if segments[..6] == [0; 6] {
        return true; // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_forbidden_v4(embedded_v4(segments[6], segments[7])); // NAT64 (RFC 6052)
    }
    if segments[0] == 0x2002 {
        return is_forbidden_v4(embedded_v4(segments[1], segments[2])); // 6to4
    }
    (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1) // local-use NAT64 (RFC 8215)
        || segments[..4] == [0x100, 0, 0, 0]                      // discard-only (RFC 6666)
        || (segments[0] == 0x2001 && segments[1] == 0)           // Teredo
        || (segments[0] == 0x2001 && segments[1] == 0xdb8)       // documentation
        || (segments[0] & 0xfe00) == 0xfc00                     // unique local (ULA), fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80                     // link-local
        || (segments[0] & 0xffc0) == 0xfec0                     // site-local (deprecated)
        || (segments[0] & 0xff00) == 0xff00 // multicast
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden(text.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn global_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn url_form_requires_https_outside_test_accounts() {
        let test = AccountId::parse("aid", "T12345678").unwrap();
        let production = AccountId::parse("aid", "P12345678").unwrap();
        assert!(check_url_form("http://hooks.example.com/x", &test).is_ok());
        assert_eq!(check_url_form("http://hooks.example.com/x", &production), Err(TargetError::HttpsRequired));
        assert!(check_url_form("https://hooks.example.com/x", &production).is_ok());
        for bad in [
            "ftp://example.com/x",
            "http://",
            "example.com/x",
            "mailto:hooks@example.com",
            "file:///etc/passwd",
            "https:/id/example.com/hook",
            "HTTPS://example.com/x",
        ] {
            assert_eq!(check_url_form(bad, &test), Err(TargetError::NotHttp), "{bad}");
        }
    }
}
