//! The master key cut into M-of-N shares (Shamir's scheme over GF(256)), so that no one person
//! holds it: any M shares rebuild it, fewer tell nothing about it. A share is one line of text,
//! `tokenvault-share-v1:<set>:<threshold>:<share hex>:<check>`: `set` names the key the shares were
//! cut from (a keyed check value of it, so a share of another key is refused before anything is
//! combined), and `check` catches a share mistyped or cut short.

use blahaj::{Share, Sharks};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const PREFIX: &str = "tokenvault-share-v1";

/// Why shares were refused; the text is meant for the person entering them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("not a tokenvault key share (it should read tokenvault-share-v1:…)")]
    Malformed,
    #[error("the share's check does not match: it was mistyped or cut short")]
    BadCheck,
    #[error("the shares belong to master key {expected}, this one to {found}")]
    OtherKey { expected: String, found: String },
    #[error("share {0} was entered already")]
    Repeated(u8),
    #[error("{threshold} shares are needed, {given} were given")]
    TooFew { threshold: u8, given: usize },
    #[error("the shares do not rebuild master key {0}: one of them is not what was handed out")]
    WrongKey(String),
    #[error("a master key is cut into 2 to 255 shares, any 2 or more of which (the threshold, at most the count) rebuild it")]
    BadSplit,
}

/// One share as read from its text.
#[derive(Clone)]
pub struct KeyShare {
    /// The check value of the master key it belongs to ([`key_check`]).
    pub set: String,
    pub threshold: u8,
    share: Share,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("set", &self.set)
            .field("threshold", &self.threshold)
            .field("index", &self.index())
            .finish()
    }
}

impl KeyShare {
    /// Which share of the set this is (1…N): what the audit trail records of it.
    pub fn index(&self) -> u8 {
        self.share.x.0
    }

    /// Reads a share's text (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, ShareError> {
        let text = text.trim();
        let (body, check) = text.rsplit_once(':').ok_or(ShareError::Malformed)?;
        let parts: Vec<&str> = body.split(':').collect();
        let [PREFIX, set, threshold, share] = parts.as_slice() else {
            return Err(ShareError::Malformed);
        };
        if set.len() != 8 || !set.bytes().all(|b| b.is_ascii_hexdigit()) || check.len() != 8 {
            return Err(ShareError::Malformed);
        }
        if checksum(body) != check {
            return Err(ShareError::BadCheck);
        }
        let threshold: u8 = threshold.parse().map_err(|_| ShareError::Malformed)?;
        let bytes = hex::decode(share).map_err(|_| ShareError::Malformed)?;
        if bytes.len() != 33 || bytes[0] == 0 || threshold < 2 {
            return Err(ShareError::Malformed);
        }
        let share = Share::try_from(bytes.as_slice()).map_err(|_| ShareError::Malformed)?;
        Ok(Self { set: (*set).to_owned(), threshold, share })
    }
}

fn checksum(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..4])
}

/// A short keyed check value of a master key (8 hex digits): names the key in share texts, logs
/// and the audit trail without revealing anything usable about it.
pub fn key_check(master: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(b"tokenvault master key check v1");
    hex::encode(&mac.finalize().into_bytes()[..4])
}

/// Cuts `master` into `count` shares, any `threshold` of which rebuild it.
pub fn split(master: &[u8; 32], threshold: u8, count: u8) -> Result<Vec<String>, ShareError> {
    if threshold < 2 || count < threshold {
        return Err(ShareError::BadSplit);
    }
    let set = key_check(master);
    Ok(Sharks(threshold)
        .dealer(master)
        .take(count.into())
        .map(|share| {
            let body = format!("{PREFIX}:{set}:{threshold}:{}", hex::encode(Vec::from(&share)));
            format!("{body}:{}", checksum(&body))
        })
        .collect())
}

/// Adds `share` to those entered so far, refusing one of another key or one entered already.
pub fn accept(entered: &[KeyShare], share: KeyShare) -> Result<Vec<KeyShare>, ShareError> {
    if let Some(first) = entered.first() {
        if first.set != share.set || first.threshold != share.threshold {
            return Err(ShareError::OtherKey { expected: first.set.clone(), found: share.set });
        }
    }
    if entered.iter().any(|other| other.index() == share.index()) {
        return Err(ShareError::Repeated(share.index()));
    }
    let mut all = entered.to_vec();
    all.push(share);
    Ok(all)
}

/// The master key the shares rebuild, checked against the set they name.
pub fn combine(shares: &[KeyShare]) -> Result<[u8; 32], ShareError> {
    let first = shares.first().ok_or(ShareError::TooFew { threshold: 2, given: 0 })?;
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::TooFew { threshold: first.threshold, given: shares.len() });
    }
    let parts: Vec<Share> = shares.iter().map(|share| share.share.clone()).collect();
    let secret = Sharks(first.threshold)
        .recover(parts.iter())
        .map_err(|_| ShareError::TooFew { threshold: first.threshold, given: shares.len() })?;
    let master: [u8; 32] = secret.try_into().map_err(|_| ShareError::Malformed)?;
    if key_check(&master) != first.set {
        return Err(ShareError::WrongKey(first.set.clone()));
    }
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(texts: &[String]) -> Vec<KeyShare> {
        texts.iter().map(|text| KeyShare::parse(text).unwrap()).collect()
    }

    #[test]
    fn any_threshold_of_the_shares_rebuild_the_key_and_fewer_do_not() {
        let master = [42u8; 32];
        let texts = split(&master, 3, 5).unwrap();
        assert_eq!(texts.len(), 5);
        let shares = parsed(&texts);
        assert_eq!(combine(&shares[..3]).unwrap(), master);
        assert_eq!(combine(&[shares[4].clone(), shares[1].clone(), shares[3].clone()]).unwrap(), master);
        assert_eq!(combine(&shares[..2]), Err(ShareError::TooFew { threshold: 3, given: 2 }));
        assert_eq!(shares[2].index(), 3);
        assert!(texts.iter().all(|text| text.starts_with(&format!("tokenvault-share-v1:{}:3:", key_check(&master)))));
    }

    #[test]
    fn mistyped_foreign_repeated_and_altered_shares_are_refused() {
        let master = [42u8; 32];
        let texts = split(&master, 2, 3).unwrap();
        let mut typo = texts[0].clone().into_bytes();
        typo[40] = if typo[40] == b'0' { b'1' } else { b'0' };
        assert_eq!(KeyShare::parse(&String::from_utf8(typo).unwrap()).unwrap_err(), ShareError::BadCheck);
        assert_eq!(KeyShare::parse("hello").unwrap_err(), ShareError::Malformed);

        let first = KeyShare::parse(&texts[0]).unwrap();
        let foreign = KeyShare::parse(&split(&[7u8; 32], 2, 2).unwrap()[1]).unwrap();
        assert!(matches!(accept(std::slice::from_ref(&first), foreign), Err(ShareError::OtherKey { .. })));
        assert_eq!(accept(std::slice::from_ref(&first), first.clone()).unwrap_err(), ShareError::Repeated(1));

        // A share re-made with a valid check but another value: the key it rebuilds is not the set's.
        let mut forged = KeyShare::parse(&texts[1]).unwrap();
        forged.share.y[0].0 ^= 1;
        assert_eq!(combine(&[first, forged]).unwrap_err(), ShareError::WrongKey(key_check(&master)));
        assert_eq!(split(&master, 1, 3).unwrap_err(), ShareError::BadSplit);
        assert_eq!(split(&master, 4, 3).unwrap_err(), ShareError::BadSplit);
    }
}
