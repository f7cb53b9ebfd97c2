//! The embedded SQLite store (being implemented).
use super::{StoreError, StoreOptions, StoreResult};

pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(_path: &std::path::Path, _options: &StoreOptions) -> StoreResult<Self> {
        Err(StoreError::Unavailable("the SQLite store is not built yet".into()))
    }
}
