//! Start-up: open the store, load keys, bind, serve until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::keys::KeyRing;
use crate::auth::AuthError;
use crate::config::ServeConfig;
use crate::crypto::{keyring, values, CryptoError, TokenCipher};
use crate::http::{self, AppState, Limits, RequestSettings};
use crate::store::{self, Store, StoreError, StoreOptions, TokenValueMode};
use crate::webhooks;

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] AuthError),
    #[error("encryption key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A server running on its own task.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, and releases the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        if let Ok(Err(error)) = self.task.await {
            tracing::warn!(%error, "server stopped with an error");
        }
    }

    /// Serves until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) -> std::io::Result<()> {
        let _keep_open = self.shutdown;
        self.task.await.unwrap_or_else(|join| Err(std::io::Error::other(join)))
    }
}

/// The card-token cipher: the configured key, or for an embedded database a key file kept
/// beside it and created on first start.
pub fn load_cipher(config: &ServeConfig) -> Result<TokenCipher, StartupError> {
    match (&config.encryption_key, config.sqlite_key_file()) {
        (Some(key), _) => Ok(TokenCipher::from_base64(key)?),
        (None, Some(path)) => Ok(TokenCipher::from_key_file(&path)?),
        (None, None) => Err(StartupError::Config(
            "--encryption-key (TOKENVAULT_ENCRYPTION_KEY) must be set when the database is PostgreSQL, the same on every instance".to_owned(),
        )),
    }
}

/// The cipher with the store's whole key ring loaded: what every command that seals or opens
/// values uses, so that values sealed after a rotation open and new ones use the newest key.
pub async fn open_cipher(config: &ServeConfig, store: &dyn Store) -> Result<Arc<TokenCipher>, StartupError> {
    let cipher = load_cipher(config)?;
    cipher.refresh(store).await?;
    Ok(Arc::new(cipher))
}

/// Opens the configured store, with migrations applied.
pub async fn open_store(config: &ServeConfig) -> Result<Arc<dyn Store>, StartupError> {
    let options = StoreOptions { pool_size: config.pool_size, acquire_timeout: config.acquire_timeout };
    Ok(store::open(&config.database_url, &options).await?)
}

/// Opens everything and starts serving on `config.listen` (port 0 picks a free port).
pub async fn start(config: ServeConfig) -> Result<RunningServer, StartupError> {
    let store = open_store(&config).await?;
    let cipher = open_cipher(&config, store.as_ref()).await?;
    if config.seal_token_values || store.token_value_mode().await? == TokenValueMode::Converting {
        let converted = values::seal_stored_values(store.as_ref(), &cipher, "serve --seal-token-values").await?;
        tracing::info!(converted, "customer token values are sealed");
    }
    let keys = KeyRing::load(store.as_ref(), cipher.clone(), config.issuer.clone(), config.token_ttl_seconds).await?;
    let key_refresher = keyring::spawn_refresher(store.clone(), cipher.clone());
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    let worker = webhooks::spawn(store.clone(), cipher.clone(), config.webhooks, webhook_wake.clone());
    let limits = Limits::new(
        config.token_requests_per_minute,
        config.token_endpoint_per_second,
        config.credential_checks,
        config.api_calls_per_second,
    );
    let metrics = Arc::new(http::metrics::Metrics::default());
    let state = AppState {
        store: store.clone(),
        keys: Arc::new(keys),
        cipher,
        webhook_wake,
        limits: Arc::new(limits),
        metrics: metrics.clone(),
        idempotency: http::idempotency::IdempotencySettings { ttl: config.idempotency_ttl, ..Default::default() },
        webhook_targets: webhooks::targets::TargetPolicy { allow_private: config.webhooks.allow_private_targets },
    };
    let router = http::router(
        state,
        RequestSettings {
            request_timeout: config.request_timeout,
            body_read_timeout: config.body_read_timeout,
            max_in_flight: config.max_in_flight,
            max_in_flight_per_address: config.max_in_flight_per_address,
        },
    );

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartupError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartupError::Listen { addr: config.listen, source })?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = http::server::serve(listener, router, config.connections, metrics, async move {
            let _ = stop.await;
        })
        .await;
        // Attempts in flight are recorded; undelivered events stay in the outbox for the next
        // start.
        worker.stop().await;
        // Awaited, so that its hold on the store is gone when the server is (SQLite checkpoints
        // and removes its WAL when the last connection closes).
        key_refresher.abort();
        let _ = key_refresher.await;
        served
    });
    Ok(RunningServer { addr, store, shutdown, task })
}
