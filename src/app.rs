//! Start-up, the one place that knows every floor: read the settings, open the store and the
//! cipher, build the use cases and the key ring, bind, serve until told to stop. The command line
//! opens what its commands need through the `open_*` functions here.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::keys::KeyRing;
use crate::auth::AuthError;
use crate::crypto::{CryptoError, TokenCipher};
use crate::http::sealed::OpenServer;
use crate::http::{self, AppState, Limits};
use crate::service::admin::Admin;
use crate::service::backup::{self, BackupKey, BackupStatus};
use crate::service::keys::{self, MasterKey};
use crate::service::unseal::Unsealer;
use crate::service::webhook_targets::TargetPolicy;
use crate::service::{journal, webhook_worker, ServiceError, Vault};
use crate::settings::{DatabaseUrl, ServeConfig};
use crate::store::{self, Store, StoreError};

/// How often a server chains new audit records: the window in which a fresh record is not yet
/// covered by the chain.
const AUDIT_SEAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the server (or a command) could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] AuthError),
    #[error("encryption key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A server running on its own task.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The store itself, for tests that look behind the API.
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

/// Process-wide settings of the embedded database; call before anything opens one.
pub fn configure_process() {
    store::sqlite::configure_process();
}

fn master_key(config: &ServeConfig) -> Result<MasterKey, StartupError> {
    config.master_key().ok_or_else(|| {
        StartupError::Config(
            "--encryption-key (TOKENVAULT_ENCRYPTION_KEY) must be set when the database is PostgreSQL, the same on every instance".to_owned(),
        )
    })
}

/// The master key's cipher without the store's data keys: the configured key, or for an
/// embedded database a key file kept beside it and created on first start.
pub fn load_cipher(config: &ServeConfig) -> Result<TokenCipher, StartupError> {
    Ok(keys::load_cipher(&master_key(config)?)?)
}

/// Opens the configured store, with migrations applied.
pub async fn open_store(config: &ServeConfig) -> Result<Arc<dyn Store>, StartupError> {
    Ok(store::open(&config.database_url, &config.store).await?)
}

/// The use cases on the configured database, with the store's whole key ring loaded.
pub async fn open_vault(config: &ServeConfig) -> Result<Vault, StartupError> {
    let store = open_store(config).await?;
    vault_on(store, config).await
}

async fn vault_on(store: Arc<dyn Store>, config: &ServeConfig) -> Result<Vault, StartupError> {
    let cipher = keys::open_cipher(&master_key(config)?, store.as_ref()).await?;
    Ok(vault_with(store, cipher, config))
}

fn vault_with(store: Arc<dyn Store>, cipher: Arc<TokenCipher>, config: &ServeConfig) -> Vault {
    Vault::new(store, cipher, TargetPolicy { allow_private: config.webhooks.allow_private_targets })
}

/// What the commands that need no encryption key work on (clients, audit trail).
pub async fn open_admin(database_url: &DatabaseUrl) -> Result<Admin, StartupError> {
    Ok(Admin::new(store::open(database_url, &Default::default()).await?))
}

/// `tokenvault migrate`: see [`store::migrate`].
pub async fn migrate(database_url: &DatabaseUrl) -> Result<Vec<i64>, StartupError> {
    Ok(store::migrate(database_url).await?)
}

/// What a serving process runs beside its requests: stopped, in this order, when it stops.
#[derive(Default)]
struct Background {
    worker: Option<webhook_worker::Worker>,
    /// Ends by itself once the router (and with it every journal handle) is gone, after writing
    /// what is queued.
    journal_writer: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    async fn stop(self) {
        if let Some(writer) = self.journal_writer {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
        // Attempts in flight are recorded; undelivered events stay in the outbox for the next
        // start.
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        // Awaited, so that their hold on the store is gone when the server is (SQLite
        // checkpoints and removes its WAL when the last connection closes).
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Opens everything and starts serving on `config.listen` (port 0 picks a free port). Started
/// with `unseal_with_shares`, it serves sealed (see `http::sealed`) until the master key's shares
/// are entered, then the full API.
pub async fn start(config: ServeConfig) -> Result<RunningServer, StartupError> {
    let store = open_store(&config).await?;
    let metrics = Arc::new(http::metrics::Metrics::default());
    let background = Arc::new(std::sync::Mutex::new(Background::default()));
    let router = if config.unseal_with_shares {
        let limits = Arc::new(limits_of(&config));
        let unsealer = Unsealer::new(store.clone());
        let (store, config, metrics, background) = (store.clone(), config.clone(), metrics.clone(), background.clone());
        let open: OpenServer = Box::new(move |master| {
            let (store, config, metrics, background) =
                (store.clone(), config.clone(), metrics.clone(), background.clone());
            Box::pin(
                async move { open_api(&config, store, &master, metrics, &background).await.map_err(|e| e.to_string()) },
            )
        });
        tracing::warn!("sealed: the API answers 503 until the master key's shares are entered (tokenvault unseal)");
        http::sealed::router(unsealer, limits, open)
    } else {
        open_api(&config, store.clone(), &master_key(&config)?, metrics.clone(), &background).await?
    };

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
        let running = std::mem::take(&mut *background.lock().expect("never poisoned"));
        running.stop().await;
        served
    });
    Ok(RunningServer { addr, store, shutdown, task })
}

fn limits_of(config: &ServeConfig) -> Limits {
    Limits::new(
        config.token_requests_per_minute,
        config.token_endpoint_per_second,
        config.credential_checks,
        config.api_calls_per_second,
    )
}

/// The full API on `store` with `master`: the key ring, the use cases, the background tasks
/// (put into `background`, for the server to stop), and the router.
async fn open_api(
    config: &ServeConfig,
    store: Arc<dyn Store>,
    master: &MasterKey,
    metrics: Arc<http::metrics::Metrics>,
    background: &std::sync::Mutex<Background>,
) -> Result<axum::Router, StartupError> {
    let cipher = keys::open_cipher(master, store.as_ref()).await?;
    let vault = Arc::new(vault_with(store.clone(), cipher.clone(), config));
    if vault.token_values_need_sealing(config.seal_token_values).await? {
        let converted = vault.seal_stored_values("serve --seal-token-values").await?;
        tracing::info!(converted, "customer token values are sealed");
    }
    let keys = KeyRing::load(store.clone(), cipher, config.issuer.clone(), config.token_ttl_seconds).await?;
    let limits = limits_of(config);
    let mut running = Background::default();
    let backups = match (&config.backups, &config.backup_key) {
        (Some(schedule), Some(key)) => {
            let key = BackupKey::from_base64(&key.0).map_err(|e| StartupError::Config(format!("backup_key: {e}")))?;
            let status = Arc::new(BackupStatus::default());
            running.tasks.push(backup::spawn_scheduled_backups(
                config.database_url.clone(),
                Arc::new(key),
                schedule.clone(),
                status.clone(),
            ));
            Some(status)
        }
        _ => None,
    };
    running.tasks.push(vault.spawn_key_refresher());
    running.tasks.push(vault.spawn_audit_sealer(AUDIT_SEAL_INTERVAL, config.audit_checkpoint_interval));
    running.worker = Some(webhook_worker::spawn(vault.clone(), config.webhooks));
    let journal = config.journal.enabled.then(|| journal::spawn(store.clone(), config.journal));
    let recorder = journal.map(|(recorder, writer)| {
        running.journal_writer = Some(writer);
        recorder
    });
    *background.lock().expect("never poisoned") = running;
    let state = AppState {
        vault,
        keys: Arc::new(keys),
        limits: Arc::new(limits),
        metrics,
        idempotency: config.idempotency,
        backups,
        public_url: config.public_url.as_deref().map(Arc::from),
        journal: recorder,
    };
    Ok(http::router(state, config.requests))
}
