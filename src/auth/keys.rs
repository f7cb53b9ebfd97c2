//! JWT signing keys: Ed25519 pairs kept in the database (so every instance signs and verifies
//! alike), created on first start, published as a JWKS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AuthError, Claims};
use crate::crypto::signing::is_sealed_signing_key;
use crate::crypto::TokenCipher;
use crate::domain::client::SigningKeyRecord;
use crate::domain::Timestamp;
use crate::store::Store;

/// Tokens longer than this are refused before any parsing: no legitimate token comes close.
const MAX_TOKEN_BYTES: usize = 4096;

struct Keys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
}

/// How far in the future `iat` (and `nbf`, which tokenvault does not issue) may lie: other
/// instances' clocks may run slightly ahead.
const ISSUED_AT_SKEW_SECONDS: i64 = 5;

/// Verified tokens remembered at most; a signature check costs far more than a lookup.
const VERIFIED_CACHE_ENTRIES: usize = 10_000;

/// How long this instance trusts what it read of a client (exists, account, scopes, secret
/// generation): a revocation or rotation made anywhere takes effect here within this time, while
/// a busy client costs one database read per this interval, not one per call.
pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Clients remembered at most.
const CLIENT_CACHE_ENTRIES: usize = 10_000;

/// What a token's claims are checked against: the client as the store last said it was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveClient {
    account: String,
    scopes: Vec<String>,
    secret_generation: i64,
}

/// A client looked up at `fetched` (`None`: there was no such client).
struct CachedClient {
    fetched: Instant,
    client: Option<Arc<LiveClient>>,
}

/// Signs access tokens with the newest key and verifies them with any published key.
pub struct KeyRing {
    keys: RwLock<Arc<Keys>>,
    /// Where keys another instance created, and the clients tokens name, are looked up.
    store: Arc<dyn Store>,
    /// Opens the sealed private keys (the master key; see `crypto::signing`).
    cipher: Arc<TokenCipher>,
    issuer: String,
    ttl_seconds: u64,
    /// Claims of tokens whose signature was already checked, until they expire.
    verified: Mutex<HashMap<String, Claims>>,
    /// Clients by id, each for at most [`CLIENT_CACHE_TTL`].
    clients: Mutex<HashMap<String, CachedClient>>,
}

impl KeyRing {
    /// Loads the keys from the store, creating the first pair when there is none. Keys still in
    /// clear (written by older versions) are sealed in place first. Fails when the newest key
    /// does not open with `cipher`'s master key: a server must not start on another database's
    /// key, nor sign with a key it cannot vouch for.
    pub async fn load(
        store: Arc<dyn Store>,
        cipher: Arc<TokenCipher>,
        issuer: String,
        ttl_seconds: u64,
    ) -> Result<Self, AuthError> {
        let records = Self::load_records(store.as_ref(), &cipher).await?;
        Ok(Self {
            keys: RwLock::new(Arc::new(build_keys(&records, &cipher)?)),
            store,
            cipher,
            issuer,
            ttl_seconds,
            verified: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        })
    }

    async fn load_records(store: &dyn Store, cipher: &TokenCipher) -> Result<Vec<SigningKeyRecord>, AuthError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            store.insert_signing_key(&generate_key(cipher)?).await?;
            records = store.signing_keys().await?;
        }
        if seal_clear_keys(store, cipher, &records).await? {
            records = store.signing_keys().await?;
        }
        Ok(records)
    }

    /// Checks a client's id and secret (`POST …/auth/token`) within `checks`' bounds.
    pub async fn authenticate(
        &self,
        checks: &super::clients::CredentialChecks,
        client_id: &str,
        secret: &str,
    ) -> Result<crate::domain::client::ClientRecord, AuthError> {
        super::clients::authenticate(self.store.as_ref(), checks, client_id, secret).await
    }

    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Issues an access token for a client acting on `audience`'s account, under the client's
    /// current secret generation.
    pub fn sign(
        &self,
        client_id: &str,
        account: &str,
        audience: &str,
        scopes: &[String],
        secret_generation: i64,
    ) -> Result<String, AuthError> {
        let keys = self.current();
        let now = now_seconds();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            aid: account.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            exp: now + self.ttl_seconds as i64,
            nbf: None,
            jti: Uuid::new_v4().to_string(),
            gen: secret_generation,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &keys.signing).map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Verifies signature (EdDSA only), issuer, expiry (`exp` must be after now), issue time and
    /// `nbf` (within the clock skew allowed), then that `sub` is a live client of `aid` holding
    /// every scope the token claims, under its current secret generation. A key id this instance
    /// does not know yet is looked up in the store once (another instance may have created it).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let store = self.store.as_ref();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        let now = now_seconds();
        let cached = self.verified_cache().get(token).cloned();
        let claims = match cached {
            Some(claims) => {
                check_times(&claims, now)?;
                claims
            }
            None => {
                let claims = self.verify_signature(token, store).await?;
                check_times(&claims, now)?;
                let mut cache = self.verified_cache();
                if cache.len() >= VERIFIED_CACHE_ENTRIES {
                    cache.retain(|_, cached| cached.exp > now);
                    if cache.len() >= VERIFIED_CACHE_ENTRIES {
                        cache.clear();
                    }
                }
                cache.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        self.check_client(&claims, store).await?;
        Ok(claims)
    }

    fn verified_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        self.verified.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn client_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedClient>> {
        self.clients.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Refuses a token whose client is gone (revoked), belongs to another account, lacks a
    /// claimed scope, or has rotated its secret since the token was issued.
    async fn check_client(&self, claims: &Claims, store: &dyn Store) -> Result<(), AuthError> {
        let client = self.live_client(&claims.sub, store).await?.ok_or(AuthError::InvalidToken)?;
        let scopes_held = claims.scope.split_whitespace().all(|scope| client.scopes.iter().any(|held| held == scope));
        if client.account == claims.aid && client.secret_generation == claims.gen && scopes_held {
            Ok(())
        } else {
            Err(AuthError::InvalidToken)
        }
    }

    /// The client as the store has it, read at most once per [`CLIENT_CACHE_TTL`].
    async fn live_client(&self, client_id: &str, store: &dyn Store) -> Result<Option<Arc<LiveClient>>, AuthError> {
        let asked = Instant::now();
        if let Some(entry) = self.client_cache().get(client_id) {
            if asked.duration_since(entry.fetched) < CLIENT_CACHE_TTL {
                return Ok(entry.client.clone());
            }
        }
        let client = store.find_client(client_id).await?.map(|client| {
            Arc::new(LiveClient {
                account: client.account_id.as_str().to_owned(),
                scopes: client.scopes,
                secret_generation: client.secret_generation,
            })
        });
        let mut cache = self.client_cache();
        if cache.len() >= CLIENT_CACHE_ENTRIES {
            cache.retain(|_, entry| asked.duration_since(entry.fetched) < CLIENT_CACHE_TTL);
            if cache.len() >= CLIENT_CACHE_ENTRIES {
                cache.clear();
            }
        }
        // Stamped with the time before the read: the entry never outlives the TTL from a state
        // older than it claims.
        cache.insert(client_id.to_owned(), CachedClient { fetched: asked, client: client.clone() });
        Ok(client)
    }

    async fn verify_signature(&self, token: &str, store: &dyn Store) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken)?;
        let mut keys = self.current();
        if !keys.verifying.contains_key(&kid) {
            let records = store.signing_keys().await?;
            if !records.iter().any(|record| record.kid == kid) {
                return Err(AuthError::InvalidToken);
            }
            let fresh = match build_keys(&records, &self.cipher) {
                Ok(fresh) => Arc::new(fresh),
                Err(error) => {
                    tracing::warn!(%error, "the signing keys in the database could not be loaded");
                    return Err(AuthError::InvalidToken);
                }
            };
            *self.keys.write().unwrap_or_else(|poison| poison.into_inner()) = fresh.clone();
            keys = fresh;
        }
        let key = keys.verifying.get(&kid).ok_or(AuthError::InvalidToken)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// The public keys as a JSON Web Key Set, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        self.current().jwks.clone()
    }
}

fn now_seconds() -> i64 {
    Timestamp::now().millis() / 1000
}

/// The time checks, with no leeway but the clock skew allowed between instances for `iat` (and
/// for `nbf`, which tokenvault never issues but honours): a token is refused once `exp <= now`,
/// and before it is valid.
fn check_times(claims: &Claims, now: i64) -> Result<(), AuthError> {
    let issued_in_the_future = claims.iat > now + ISSUED_AT_SKEW_SECONDS;
    let not_valid_yet = claims.nbf.is_some_and(|nbf| nbf > now + ISSUED_AT_SKEW_SECONDS);
    let expired = claims.exp <= now;
    if issued_in_the_future || not_valid_yet || expired {
        Err(AuthError::InvalidToken)
    } else {
        Ok(())
    }
}

/// Seals in place each key still stored in clear; returns whether there was any. Instances
/// starting at once may race: the store writes only over the clear bytes, so one wins and the
/// others find the key sealed when they read the keys again.
async fn seal_clear_keys(
    store: &dyn Store,
    cipher: &TokenCipher,
    records: &[SigningKeyRecord],
) -> Result<bool, AuthError> {
    let mut found = false;
    for record in records.iter().filter(|record| !is_sealed_signing_key(&record.private_key)) {
        let sealed = cipher.seal_signing_key(&record.kid, &record.private_key)?;
        if store.replace_signing_key(&record.kid, &record.private_key, &sealed).await? {
            tracing::info!(kid = %record.kid, "sealed a JWT signing key stored in clear under the master key");
        }
        found = true;
    }
    Ok(found)
}

fn generate_key(cipher: &TokenCipher) -> Result<SigningKeyRecord, AuthError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = signing.to_pkcs8_der().map_err(|e| AuthError::Signing(e.to_string()))?;
    let kid = Uuid::new_v4().to_string();
    Ok(SigningKeyRecord {
        private_key: cipher.seal_signing_key(&kid, der.as_bytes())?,
        kid,
        public_key: signing.verifying_key().to_bytes().to_vec(),
        created_at: Timestamp::now(),
    })
}

/// Opens the newest key for signing (checking that it is the pair of its published public key)
/// and takes every key's public half for verifying.
fn build_keys(records: &[SigningKeyRecord], cipher: &TokenCipher) -> Result<Keys, AuthError> {
    let newest = records.first().ok_or_else(|| AuthError::Signing("no signing key".into()))?;
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    for record in records {
        if record.public_key.len() != 32 {
            return Err(AuthError::Signing(format!("signing key {} is not an Ed25519 key", record.kid)));
        }
        verifying.insert(record.kid.clone(), DecodingKey::from_ed_der(&record.public_key));
        jwks.push(json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": record.kid,
            "x": URL_SAFE_NO_PAD.encode(&record.public_key),
            "alg": "EdDSA",
            "use": "sig",
        }));
    }
    let private_key = cipher.open_signing_key(&newest.kid, &newest.private_key)?;
    let pair = SigningKey::from_pkcs8_der(&private_key)
        .map_err(|e| AuthError::Signing(format!("signing key {} is not an Ed25519 key: {e}", newest.kid)))?;
    if pair.verifying_key().to_bytes()[..] != newest.public_key[..] {
        return Err(AuthError::Signing(format!("signing key {}: its private and public halves differ", newest.kid)));
    }
    Ok(Keys {
        signing_kid: newest.kid.clone(),
        signing: EncodingKey::from_ed_der(&private_key),
        verifying,
        jwks: json!({ "keys": jwks }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64, nbf: Option<i64>) -> Claims {
        Claims {
            iss: "tokenvault".into(),
            sub: "c".into(),
            aud: "a".into(),
            aid: "T12345678".into(),
            scope: String::new(),
            iat,
            exp,
            nbf,
            jti: "j".into(),
            gen: 1,
        }
    }

    #[test]
    fn a_token_is_valid_from_nbf_and_iat_within_the_skew_until_the_second_before_exp() {
        let now = 1_000;
        assert!(check_times(&claims(now, now + 1, None), now).is_ok());
        assert!(check_times(&claims(now, now, None), now).is_err(), "exp == now is expired");
        assert!(check_times(&claims(now - 10, now - 1, None), now).is_err());
        assert!(check_times(&claims(now + ISSUED_AT_SKEW_SECONDS, now + 60, None), now).is_ok());
        assert!(check_times(&claims(now + ISSUED_AT_SKEW_SECONDS + 1, now + 60, None), now).is_err());
        assert!(check_times(&claims(now, now + 60, Some(now - 1)), now).is_ok());
        assert!(check_times(&claims(now, now + 60, Some(now + ISSUED_AT_SKEW_SECONDS)), now).is_ok());
        assert!(check_times(&claims(now, now + 60, Some(now + ISSUED_AT_SKEW_SECONDS + 1)), now).is_err());
    }

    #[test]
    fn tokens_without_a_generation_claim_count_as_the_first() {
        let json = r#"{"iss":"i","sub":"s","aud":"a","aid":"T12345678","scope":"","iat":1,"exp":2,"jti":"j"}"#;
        let parsed: Claims = serde_json::from_str(json).unwrap();
        assert_eq!((parsed.gen, parsed.nbf), (1, None));
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(written["gen"], 1);
        assert!(written.get("nbf").is_none(), "nbf is never issued");
    }
}
