//! JWT signing keys: Ed25519 pairs kept in the database (so every instance signs and verifies
//! alike), created on first start, published as a JWKS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AuthError, Claims};
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

/// How far in the future `iat` may lie: other instances' clocks may run slightly ahead.
const ISSUED_AT_SKEW_SECONDS: i64 = 5;

/// Verified tokens remembered at most; a signature check costs far more than a lookup.
const VERIFIED_CACHE_ENTRIES: usize = 10_000;

/// Signs access tokens with the newest key and verifies them with any published key.
pub struct KeyRing {
    keys: RwLock<Arc<Keys>>,
    issuer: String,
    ttl_seconds: u64,
    /// Claims of tokens whose signature was already checked, until they expire.
    verified: Mutex<HashMap<String, Claims>>,
}

impl KeyRing {
    /// Loads the keys from the store, creating the first pair when there is none.
    pub async fn load(store: &dyn Store, issuer: String, ttl_seconds: u64) -> Result<Self, AuthError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            store.insert_signing_key(&generate_key()?).await?;
            records = store.signing_keys().await?;
        }
        Ok(Self {
            keys: RwLock::new(Arc::new(build_keys(&records)?)),
            issuer,
            ttl_seconds,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Issues an access token for a client acting on `audience`'s account.
    pub fn sign(&self, client_id: &str, account: &str, audience: &str, scopes: &[String]) -> Result<String, AuthError> {
        let keys = self.current();
        let now = Timestamp::now().millis() / 1000;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            aid: account.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            exp: now + self.ttl_seconds as i64,
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &keys.signing).map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Verifies signature (EdDSA only), issuer, expiry and issue time, with no leeway. A key id
    /// this instance does not know yet is looked up in the store once (another instance may have
    /// created it).
    pub async fn verify(&self, token: &str, store: &dyn Store) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        let now = Timestamp::now().millis() / 1000;
        if let Some(claims) = self.verified_cache().get(token) {
            return if claims.iat <= now + ISSUED_AT_SKEW_SECONDS && now < claims.exp {
                Ok(claims.clone())
            } else {
                Err(AuthError::InvalidToken)
            };
        }
        let claims = self.verify_signature(token, store).await?;
        let mut cache = self.verified_cache();
        if cache.len() >= VERIFIED_CACHE_ENTRIES {
            cache.retain(|_, cached| cached.exp > now);
            if cache.len() >= VERIFIED_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verified_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        self.verified.lock().unwrap_or_else(|poison| poison.into_inner())
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
            let fresh = Arc::new(build_keys(&records)?);
            *self.keys.write().unwrap_or_else(|poison| poison.into_inner()) = fresh.clone();
            keys = fresh;
        }
        let key = keys.verifying.get(&kid).ok_or(AuthError::InvalidToken)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::InvalidToken)?;
        // The claim set is fixed by decisions.md (no `nbf`): a token issued in the future is
        // not valid yet, allowing for a little clock skew between instances.
        if claims.iat > Timestamp::now().millis() / 1000 + ISSUED_AT_SKEW_SECONDS {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    /// The public keys as a JSON Web Key Set, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        self.current().jwks.clone()
    }
}

fn generate_key() -> Result<SigningKeyRecord, AuthError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = signing.to_pkcs8_der().map_err(|e| AuthError::Signing(e.to_string()))?;
    Ok(SigningKeyRecord {
        kid: Uuid::new_v4().to_string(),
        private_key: der.as_bytes().to_vec(),
        public_key: signing.verifying_key().to_bytes().to_vec(),
        created_at: Timestamp::now(),
    })
}

fn build_keys(records: &[SigningKeyRecord]) -> Result<Keys, AuthError> {
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
    Ok(Keys {
        signing_kid: newest.kid.clone(),
        signing: EncodingKey::from_ed_der(&newest.private_key),
        verifying,
        jwks: json!({ "keys": jwks }),
    })
}
