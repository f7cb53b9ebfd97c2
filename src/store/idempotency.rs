//! Idempotency keys: claims on them and the responses kept for replay.

use async_trait::async_trait;

use super::{IdempotencyScope, IdempotencyStart, IdempotentRequest, StoreResult, StoredResponse};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims an idempotency key, atomically: a key never used, or expired (`expires_at <= now`),
    /// is claimed (`Started`); a key of a different fingerprint is `Mismatch`; a finished one
    /// `Replay`s its response; an unfinished one is `InProgress` while its lease holds and is
    /// taken over (`Started`, with the new `attempt` and lease, keeping its expiry) after. Also
    /// purges a few expired keys. A separate transaction from the request's own writes.
    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart>;

    /// Stores the response of the claim `attempt` for replay; does nothing when the claim is no
    /// longer held (taken over after its lease ran out, or abandoned).
    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()>;

    /// Releases the claim `attempt` without a response (the request failed in a way a retry may
    /// fix): the key is free again. Does nothing when the claim is no longer held.
    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()>;
}
