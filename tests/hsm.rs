//! The master key inside an HSM (PKCS#11), against SoftHSM2 (Debian's `softhsm2`, which
//! `.ci/run` installs): the key is made in the token as sensitive and never extractable; a fresh
//! database started with it keeps its root wrapped by the token; a database of a key file moves
//! into the HSM by rotating the master key, and is refused until it has; a wrong PIN or label
//! stops the start. Skipped with a notice where SoftHSM2 is missing, unless
//! TOKENVAULT_REQUIRE_HSM=1.

#[path = "support/optional.rs"]
mod optional;
#[path = "support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use tokenvault::app;
use tokenvault::auth::clients::create_client;
use tokenvault::crypto::hsm::HsmSettings;
use tokenvault::domain::AccountId;
use tokenvault::service::keys::{self, MasterKey};
use tokenvault::settings::{Secret, ServeConfig};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const ACCOUNT: &str = "T00000001";
const PIN: &str = "4711-user";
const KEY: &str = "dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=";

/// One token for the whole test binary, in a directory of its own: SoftHSM2 reads its
/// configuration once per process (`SOFTHSM2_CONF`, set before the module is first loaded).
fn token() -> Option<&'static Path> {
    static TOKEN: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            if !Path::new(MODULE).exists() {
                optional::skip_or_require(
                    "TOKENVAULT_REQUIRE_HSM",
                    "the HSM tests",
                    "SoftHSM2 is not installed (apt-get install softhsm2)",
                );
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("tokens")).unwrap();
            let conf = dir.path().join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    dir.path().join("tokens").display()
                ),
            )
            .unwrap();
            std::env::set_var("SOFTHSM2_CONF", &conf);
            let init = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", "tokenvault", "--pin", PIN, "--so-pin", "4711-so"])
                .output()
                .expect("softhsm2-util");
            assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
            Some(dir)
        })
        .as_ref()
        .map(|dir| dir.path())
}

fn hsm(key_label: &str) -> HsmSettings {
    HsmSettings {
        module: PathBuf::from(MODULE),
        token_label: "tokenvault".to_owned(),
        pin: PIN.to_owned(),
        key_label: key_label.to_owned(),
    }
}

fn config(database_url: &str, hsm: Option<HsmSettings>, key: Option<&str>) -> ServeConfig {
    let mut config = ServeConfig::new(database_url.parse().unwrap());
    config.hsm = hsm;
    config.encryption_key = key.map(|key| Secret(key.to_owned()));
    config
}

/// A card token made through the API of a server on `config`, and how it reads back.
async fn card_through(config: ServeConfig) -> (String, Value, String) {
    let server = app::start(config).await.unwrap();
    let account = AccountId::parse("account", ACCOUNT).unwrap();
    let client = create_client(server.store.as_ref(), &account, vec!["admin:checkout".to_owned()]).await.unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/v1/accounts/{ACCOUNT}/auth/token", server.url()))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let response = http
        .post(format!("{}/v1/card-tokens", server.url()))
        .bearer_auth(&bearer)
        .json(&json!({"token": "psp-secret-in-hsm", "card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let card: Value = response.json().await.unwrap();
    server.shutdown().await;
    (format!("/v1/card-tokens/{}", card["id"].as_str().unwrap()), card, bearer)
}

async fn reads_back(config: ServeConfig, path: &str, card: &Value, bearer: &str) {
    let server = app::start(config).await.unwrap();
    let response =
        reqwest::Client::new().get(format!("{}{path}", server.url())).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.json::<Value>().await.unwrap(), card);
    server.shutdown().await;
}

#[test]
fn the_key_is_made_in_the_token_and_never_leaves_it() {
    if token().is_none() {
        return;
    }
    let report = serde_json::to_value(keys::init_hsm_key(&hsm("never-leaves")).unwrap()).unwrap();
    assert_eq!(
        report,
        json!({"token_label": "tokenvault", "key_label": "never-leaves", "generated": true, "sensitive": true,
               "extractable": false, "never_extractable": true, "value_readable": false})
    );
    let again = serde_json::to_value(keys::init_hsm_key(&hsm("never-leaves")).unwrap()).unwrap();
    assert_eq!(again["generated"], false, "an existing key is kept: {again}");
    // A wrong PIN, from a process of its own (a process that logged in once stays logged in).
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args([
            "keys",
            "hsm-init",
            "--pkcs11-module",
            MODULE,
            "--pkcs11-pin",
            "0000",
            "--pkcs11-key-label",
            "never-leaves",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot log in to the token (is the PIN right?)"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args([
            "keys",
            "hsm-init",
            "--pkcs11-module",
            MODULE,
            "--pkcs11-pin",
            PIN,
            "--pkcs11-key-label",
            "never-leaves",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, again);
}

async fn a_database_lives_on_an_hsm_key(database_url: &str, label: &str) {
    keys::init_hsm_key(&hsm(label)).unwrap();
    let (path, card, bearer) = card_through(config(database_url, Some(hsm(label)), None)).await;
    reads_back(config(database_url, Some(hsm(label)), None), &path, &card, &bearer).await;
    // Another key of the same token does not open it, nor does a key file's.
    keys::init_hsm_key(&hsm(&format!("{label}-other"))).unwrap();
    let error = app::start(config(database_url, Some(hsm(&format!("{label}-other"))), None)).await.err().unwrap();
    assert!(error.to_string().contains("root key does not open"), "{error}");
    let error = app::start(config(database_url, None, Some(KEY))).await.err().unwrap();
    assert!(error.to_string().contains("root key does not open"), "{error}");
    let error = app::start(config(database_url, Some(hsm("no-such-key")), None)).await.err().unwrap();
    assert!(error.to_string().contains("holds no key labelled \"no-such-key\""), "{error}");
}

#[tokio::test]
async fn a_database_lives_on_an_hsm_key_on_sqlite() {
    if token().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    a_database_lives_on_an_hsm_key(&format!("sqlite://{}", dir.path().join("tv.db").display()), "sqlite-fresh").await;
}

#[tokio::test]
async fn a_database_lives_on_an_hsm_key_on_postgres() {
    if token().is_none() {
        return;
    }
    let Some(admin) = pg::admin_or_skip("the HSM on PostgreSQL").await else { return };
    let db = pg::TempDatabase::create_on(&admin).await;
    a_database_lives_on_an_hsm_key(&db.url, "postgres-fresh").await;
}

async fn a_key_file_database_moves_into_the_hsm(database_url: &str, label: &str) {
    keys::init_hsm_key(&hsm(label)).unwrap();
    // Card tokens sealed by a command under the key file, before any server made signing keys.
    let vault = app::open_vault(&config(database_url, None, Some(KEY))).await.unwrap();
    let account = AccountId::parse("account", ACCOUNT).unwrap();
    let demo: tokenvault::service::seed::Fixtures = serde_json::from_str(tokenvault::service::seed::DEMO).unwrap();
    tokenvault::service::seed::load(&vault, &account, &demo).await.unwrap();
    let error = app::start(config(database_url, Some(hsm(label)), None)).await.err().unwrap();
    assert!(error.to_string().contains("move it into the HSM"), "{error}");
    let (path, card, bearer) = card_through(config(database_url, None, Some(KEY))).await;
    let error = app::start(config(database_url, Some(hsm(label)), None)).await.err().unwrap();
    assert!(error.to_string().contains("move it into the HSM"), "{error}");

    let vault = app::open_vault(&config(database_url, None, Some(KEY))).await.unwrap();
    vault.add_data_key("test").await.unwrap();
    let rotation =
        serde_json::to_value(vault.rotate_master_key(&MasterKey::Hsm(hsm(label)), "test").await.unwrap()).unwrap();
    assert_eq!(rotation["to"], format!("PKCS#11 key {label:?}"));
    assert_eq!((rotation["data_keys"].clone(), rotation["signing_keys"].clone()), (json!(1), json!(1)));
    reads_back(config(database_url, Some(hsm(label)), None), &path, &card, &bearer).await;
    let error = app::start(config(database_url, None, Some(KEY))).await.err().unwrap();
    assert!(error.to_string().contains("root key does not open"), "{error}");
}

#[tokio::test]
async fn a_key_file_database_moves_into_the_hsm_on_sqlite() {
    if token().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    a_key_file_database_moves_into_the_hsm(&format!("sqlite://{}", dir.path().join("tv.db").display()), "sqlite-moved")
        .await;
}

#[tokio::test]
async fn a_key_file_database_moves_into_the_hsm_on_postgres() {
    if token().is_none() {
        return;
    }
    let Some(admin) = pg::admin_or_skip("moving into the HSM on PostgreSQL").await else { return };
    let db = pg::TempDatabase::create_on(&admin).await;
    a_key_file_database_moves_into_the_hsm(&db.url, "postgres-moved").await;
}
