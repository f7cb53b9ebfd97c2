//! The values of auto tokens (Dintero's `AutoTokenType`): a SHA-256 digest of the customer's
//! e-mail or phone number, or an HMAC-SHA256 keyed with the settings' `secret` ("Use the secret
//! to compute HMAC SHA256 digest of the source value"), as lower-case hex.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::domain::customer_settings::{AutoTokenKind, AutoTokenType};

/// The token value `auto` derives from `source`. An HMAC type without a secret (refused when
/// settings are put) keys with the empty string.
pub fn auto_token_value(auto: &AutoTokenType, source: &str) -> String {
    match auto.kind {
        AutoTokenKind::Sha256 => hex::encode(Sha256::digest(source.as_bytes())),
        AutoTokenKind::HmacSha256 => {
            let key = auto.secret.as_deref().unwrap_or_default();
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(source.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lower_case_hex() {
        let sha = AutoTokenType { kind: AutoTokenKind::Sha256, secret: None };
        assert_eq!(auto_token_value(&sha, "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // RFC 4231 test case 2.
        let hmac = AutoTokenType { kind: AutoTokenKind::HmacSha256, secret: Some("Jefe".into()) };
        assert_eq!(
            auto_token_value(&hmac, "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
