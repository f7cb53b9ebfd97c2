//! API clients: created from the command line, authenticated with an Argon2id-hashed secret.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::AuthError;
use crate::domain::client::ClientRecord;
use crate::domain::{AccountId, Timestamp};
use crate::store::Store;

/// What `tokenvault clients create` prints: the only time the secret is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub account_id: String,
    pub scopes: Vec<String>,
}

/// Creates a client with a fresh random secret, storing only its hash.
pub async fn create_client(
    store: &dyn Store,
    account: &AccountId,
    scopes: Vec<String>,
) -> Result<ClientCredentials, AuthError> {
    let client_id = Uuid::new_v4().to_string();
    let credentials = store_client(store, client_id, account, scopes, None).await?;
    Ok(credentials)
}

/// The shortest secret a client may be given (`serve --dev-client-secret`): 128 bits of
/// base64url, as guessable as a UUID at best.
pub const MIN_GIVEN_SECRET_CHARS: usize = 22;

/// Stores (or replaces) the client `client_id` with `secret`, or a fresh random one. `serve
/// --dev` uses it to hand out the same dev client on every start (and, given a secret, the same
/// credentials, so that a CI pipeline can pin them).
pub async fn store_client(
    store: &dyn Store,
    client_id: String,
    account: &AccountId,
    scopes: Vec<String>,
    secret: Option<&str>,
) -> Result<ClientCredentials, AuthError> {
    let (client_secret, secret_hash) = match secret {
        Some(secret) if secret.chars().count() < MIN_GIVEN_SECRET_CHARS || secret.chars().any(char::is_whitespace) => {
            return Err(AuthError::InvalidField(crate::domain::FieldError::new(
                "client_secret",
                format!("must be at least {MIN_GIVEN_SECRET_CHARS} characters without spaces"),
            )))
        }
        Some(secret) => (secret.to_owned(), hash_secret(secret)?),
        None => new_secret()?,
    };
    store
        .upsert_client(&ClientRecord {
            client_id: client_id.clone(),
            account_id: account.clone(),
            secret_hash,
            scopes: scopes.clone(),
            created_at: Timestamp::now(),
            secret_generation: 1,
        })
        .await?;
    Ok(ClientCredentials { client_id, client_secret, account_id: account.to_string(), scopes })
}

/// A client as `tokenvault clients list` and `revoke` print it: never its secret hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub account_id: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
}

impl From<ClientRecord> for ClientSummary {
    fn from(client: ClientRecord) -> Self {
        Self {
            client_id: client.client_id,
            account_id: client.account_id.to_string(),
            scopes: client.scopes,
            created_at: client.created_at,
        }
    }
}

/// Every client, or one account's, by client id.
pub async fn list_clients(store: &dyn Store, account: Option<&AccountId>) -> Result<Vec<ClientSummary>, AuthError> {
    Ok(store.list_clients(account).await?.into_iter().map(ClientSummary::from).collect())
}

/// Revokes a client (audited, with `actor` as who did it): it gets no more tokens, and the
/// tokens it holds are refused by every instance within `keys::CLIENT_CACHE_TTL`.
pub async fn revoke_client(store: &dyn Store, client_id: &str, actor: &str) -> Result<ClientSummary, AuthError> {
    Ok(store.revoke_client(client_id, actor, Timestamp::now()).await?.into())
}

/// Gives a client a fresh secret (audited) and a new secret generation, so that tokens issued
/// under the old secret are refused like the old secret itself. Prints like `clients create`.
pub async fn rotate_secret(store: &dyn Store, client_id: &str, actor: &str) -> Result<ClientCredentials, AuthError> {
    let (client_secret, secret_hash) = new_secret()?;
    let client = store.rotate_client_secret(client_id, &secret_hash, actor, Timestamp::now()).await?;
    Ok(ClientCredentials {
        client_id: client.client_id,
        client_secret,
        account_id: client.account_id.to_string(),
        scopes: client.scopes,
    })
}

/// A random 256-bit secret (base64url) and its Argon2id hash.
fn new_secret() -> Result<(String, String), AuthError> {
    let mut secret_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
    let client_secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let secret_hash = hash_secret(&client_secret)?;
    Ok((client_secret, secret_hash))
}

fn hash_secret(secret: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Signing(e.to_string()))
}

/// A hash of a secret nobody knows, verified against when the client id is unknown so that
/// a wrong id and a wrong secret take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_secret("no client has this secret").unwrap_or_default());

/// How many client-secret checks may run at once. Each is an Argon2id hash holding ~19 MiB for
/// tens of milliseconds, and anyone can ask for one (unknown client ids are checked against a
/// dummy hash, so that they take as long): without a cap, concurrent token requests alone grow
/// memory by 19 MiB each and take every core. A few requests may wait briefly for a place (a
/// client's workers often start together); beyond those, the answer is [`AuthError::Busy`] at
/// once.
pub struct CredentialChecks {
    permits: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

/// Longest a token request waits for a credential check to start.
const CHECK_WAIT: Duration = Duration::from_secs(1);

impl CredentialChecks {
    pub fn new(at_once: usize) -> Self {
        let at_once = at_once.max(1);
        Self { permits: Arc::new(Semaphore::new(at_once)), waiting: Arc::new(Semaphore::new(4 * at_once)) }
    }

    /// The default: one core kept free for serving API calls (at least one check at a time).
    pub fn default_at_once() -> usize {
        std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
    }

    /// A place to run one check, waiting at most [`CHECK_WAIT`] and only while few others wait.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = self.waiting.try_acquire().map_err(|_| AuthError::Busy)?;
        match tokio::time::timeout(CHECK_WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AuthError::Busy),
        }
    }
}

/// Lowers the calling thread's CPU priority (nice 10; Linux sets it per thread): a credential
/// check runs on a thread of its own at that priority, so that under a flood of token requests
/// the cores go to API calls first and the checks take what is left.
fn yield_the_cpu_to_api_calls() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Returns the client when `secret` is its secret; Argon2's comparison is constant-time. When
/// `checks` are all taken (and enough requests wait already), fails with [`AuthError::Busy`].
pub async fn authenticate(
    store: &dyn Store,
    checks: &CredentialChecks,
    client_id: &str,
    secret: &str,
) -> Result<ClientRecord, AuthError> {
    // Taken before any work and held by the hash itself, so that a client that hangs up does not
    // free its place while its hash still runs.
    let permit = checks.enter().await?;
    let client = store.find_client(client_id).await?;
    let hash = client.as_ref().map_or(DUMMY_HASH.as_str(), |c| c.secret_hash.as_str()).to_owned();
    let secret = secret.to_owned();
    let (verdict, verified) = tokio::sync::oneshot::channel();
    let checker = std::thread::Builder::new().name("credential-check".to_owned()).spawn(move || {
        yield_the_cpu_to_api_calls();
        let verified = PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok());
        // The place is free before the answer goes out, so that a client's next request finds it.
        drop(permit);
        let _ = verdict.send(verified);
    });
    let verified = checker.is_ok() && verified.await.unwrap_or(false);
    match client {
        Some(client) if verified => Ok(client),
        _ => Err(AuthError::InvalidClient),
    }
}
