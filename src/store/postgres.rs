//! The PostgreSQL store (being implemented).
use super::{StoreError, StoreOptions, StoreResult};

pub struct PostgresStore;

impl PostgresStore {
    pub async fn connect(_url: &str, _options: &StoreOptions) -> StoreResult<Self> {
        Err(StoreError::Unavailable("the PostgreSQL store is not built yet".into()))
    }
}
