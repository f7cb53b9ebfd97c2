//! The fuzz targets' bodies (`targets`) and their shared set-up: one Tokio runtime, one SQLite
//! store in a temporary directory (on `/dev/shm` when there is one, so fsyncs cost nothing), a
//! fixed Ed25519 signing key, and the application state the router needs. Everything is built
//! once per process and reused by every input.
//!
//! This file is also compiled into the root crate's `tests/fuzz_smoke.rs` (as a module, by
//! `#[path]`): it must not use libfuzzer-sys, and refers to its own items by relative paths
//! (`super::…`), never `crate::` or `tokenvault_fuzz::`.

pub mod targets;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use tokenvault::auth::keys::KeyRing;
use tokenvault::crypto::TokenCipher;
use tokenvault::domain::client::{ClientRecord, SigningKeyRecord};
use tokenvault::domain::{AccountId, Timestamp};
use tokenvault::http::{AppState, Limits};
use tokenvault::service::Vault;
use tokenvault::store::{Store, StoreOptions};

/// The account the fuzzers act for, and another one (for cross-account requests).
pub const ACCOUNT: &str = "T12345678";
pub const OTHER_ACCOUNT: &str = "T87654321";
pub const ISSUER: &str = "tokenvault-fuzz";
/// The key id of [`signing_key`] in the store.
pub const KID: &str = "fuzz-key-1";
pub const SCOPES: &[&str] = &["admin:customers", "admin:checkout", "admin:hooks"];

/// The fixed Ed25519 key the fuzz store signs and verifies with.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A base64url JWT over `header` and `claims` as given (bytes, not necessarily JSON), signed with
/// [`signing_key`] the way EdDSA JWTs are: over `b64(header) "." b64(claims)`.
pub fn sign_raw(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = signing_key().sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The one runtime every target blocks on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
    })
}

/// A directory that lives as long as the process: on tmpfs when available. A static is never
/// dropped, so the directory outlives the process; its name carries the process id, and those
/// of processes that are gone (earlier runs, `cargo test` included) are removed on first use.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        remove_stale_scratch_dirs(&parent);
        let prefix = format!("{SCRATCH_PREFIX}{}-", std::process::id());
        tempfile::Builder::new().prefix(&prefix).tempdir_in(parent).expect("temporary directory")
    })
    .path()
}

const SCRATCH_PREFIX: &str = "tokenvault-fuzz-";

fn remove_stale_scratch_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)).and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let alive = pid.parse::<u32>().map(|pid| Path::new(&format!("/proc/{pid}")).exists());
        // Only where /proc tells which processes live; names without a pid are left alone.
        if alive == Ok(false) && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn sqlite_url(path: &Path) -> tokenvault::store::DatabaseUrl {
    format!("sqlite://{}", path.display()).parse().expect("an SQLite URL")
}

/// Everything a request needs, over a store with the fixed signing key.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    /// The master key the fixture's data is sealed with.
    pub cipher: Arc<TokenCipher>,
    pub state: AppState,
    /// A valid access token for [`ACCOUNT`] with every scope.
    pub token: String,
    /// A valid access token for [`OTHER_ACCOUNT`] with only `read:checkout`.
    pub other_token: String,
    pub account: AccountId,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| runtime().block_on(build_fixture()))
}

async fn build_fixture() -> Fixture {
    let path: PathBuf = scratch_dir().join("store.db");
    let store = tokenvault::store::open(&sqlite_url(&path), &StoreOptions::default()).await.expect("open store");
    let key = signing_key();
    let record = SigningKeyRecord {
        kid: KID.to_owned(),
        private_key: key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        created_at: Timestamp::now(),
    };
    store.insert_signing_key(&record).await.expect("insert signing key");
    let cipher = Arc::new(TokenCipher::from_master_key(&[9u8; 32]));
    let keys =
        Arc::new(KeyRing::load(store.clone(), cipher.clone(), ISSUER.to_owned(), 86_400).await.expect("key ring"));
    let scopes: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    // The tokens' clients exist: verification refuses tokens of clients that do not.
    for (client_id, account, scopes) in
        [("fuzz-client", ACCOUNT, scopes.clone()), ("fuzz-other", OTHER_ACCOUNT, vec!["read:checkout".to_owned()])]
    {
        let client = ClientRecord {
            client_id: client_id.to_owned(),
            account_id: AccountId::parse("account", account).expect("account"),
            secret_hash: "$argon2id$none".to_owned(),
            scopes,
            created_at: Timestamp::now(),
            secret_generation: 1,
        };
        store.upsert_client(&client).await.expect("insert client");
    }
    let token = keys
        .sign("fuzz-client", ACCOUNT, &format!("https://api.dintero.com/v1/accounts/{ACCOUNT}"), &scopes, 1)
        .expect("sign");
    let other_token = keys
        .sign("fuzz-other", OTHER_ACCOUNT, "https://api.dintero.com", &["read:checkout".to_owned()], 1)
        .expect("sign");
    let vault = Arc::new(Vault::new(store.clone(), cipher.clone(), Default::default()));
    let state = AppState {
        vault,
        keys: keys.clone(),
        limits: Arc::new(Limits::new(60, 50, 2, 0)),
        metrics: Arc::default(),
        idempotency: Default::default(),
        backups: None,
        public_url: None,
        journal: None,
    };
    Fixture {
        store,
        keys,
        cipher,
        state,
        token,
        other_token,
        account: AccountId::parse("account", ACCOUNT).expect("account"),
    }
}

/// The whole router over the fixture's state, as `serve` builds it.
pub fn router() -> axum::Router {
    tokenvault::http::router(fixture().state.clone(), tokenvault::http::RequestSettings::default())
}
