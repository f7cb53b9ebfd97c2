//! Idempotency keys: the claims a retried request finds, and the responses kept for replay,
//! sealed to the caller and key (they may hold card tokens). The HTTP layer decides which
//! requests take keys and what a response is; this is what is kept, and how.

use std::time::Duration;

use uuid::Uuid;

use super::{ServiceResult, Vault};
use crate::domain::{AccountId, Timestamp};
pub use crate::store::{IdempotencyScope, IdempotencyStart, IdempotentRequest, StoredResponse};

/// How long keys are kept, and how long a claim holds while its request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// Keys are forgotten this long after their first use (24 h).
    pub ttl: Duration,
    /// An unfinished claim blocks retries (409) this long; after that a retry runs the request
    /// again. Longer than any request can take.
    pub lease: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(24 * 60 * 60), lease: Duration::from_secs(60) }
    }
}

fn later(at: Timestamp, by: Duration) -> Timestamp {
    Timestamp::from_millis(at.millis().saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)))
}

/// The context a stored body is sealed to: it opens only for the same caller and key.
fn seal_context(scope: &IdempotencyScope) -> Vec<u8> {
    format!("idempotency\0{}\0{}\0{}", scope.account, scope.client_id, scope.key).into_bytes()
}

impl Vault {
    /// A new claim on `key` for a request whose `parts` (method, path, query, body) a retry must
    /// repeat exactly; nothing is stored until [`Vault::begin_idempotent`]. Its lease and expiry
    /// run on the account's clock.
    pub async fn idempotent_request(
        &self,
        account: AccountId,
        client_id: String,
        key: String,
        parts: &[&[u8]],
        settings: IdempotencySettings,
    ) -> ServiceResult<IdempotentRequest> {
        let now = self.now(&account).await?;
        Ok(IdempotentRequest {
            scope: IdempotencyScope { account, client_id, key },
            fingerprint: self.cipher.request_digest(parts),
            attempt: Uuid::new_v4(),
            now,
            lease_until: later(now, settings.lease),
            expires_at: later(now, settings.ttl),
        })
    }

    /// Claims the key, or finds it used (see [`IdempotencyStart`]).
    pub async fn begin_idempotent(&self, claim: &IdempotentRequest) -> ServiceResult<IdempotencyStart> {
        Ok(self.store.begin_idempotent(claim).await?)
    }

    /// Keeps the response of the claim for replay, its body sealed.
    pub async fn finish_idempotent(
        &self,
        claim: &IdempotentRequest,
        status: u16,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> ServiceResult<()> {
        let stored =
            StoredResponse { status, headers, body: self.cipher.seal_bytes(&seal_context(&claim.scope), body) };
        Ok(self.store.finish_idempotent(&claim.scope, claim.attempt, &stored).await?)
    }

    /// Frees the key without a response: a retry runs the request afresh.
    pub async fn abandon_idempotent(&self, claim: &IdempotentRequest) -> ServiceResult<()> {
        Ok(self.store.abandon_idempotent(&claim.scope, claim.attempt).await?)
    }

    /// The body of a kept response, opened.
    pub async fn replayed_body(&self, scope: &IdempotencyScope, stored: &StoredResponse) -> ServiceResult<Vec<u8>> {
        self.ensure_keys([stored.body.as_slice()]).await?;
        Ok(self.cipher.open_bytes(&seal_context(scope), &stored.body)?)
    }
}
