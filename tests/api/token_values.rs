//! Customer token values at rest (`serve --seal-token-values`, issue 5 item 3): stored encrypted,
//! yet every API answer, `type`+`value` lookup and uniqueness rule behaves as with values in
//! clear; turning it on converts the values already stored, and the database keeps it on.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(backend: sealed_values_behave_as_plain_ones_and_never_reach_the_database, turning_sealing_on_converts_stored_values);

const TYPE: &str = "sha1:email";

fn distinctive(label: &str) -> String {
    format!("VALUE_{label}_{}", uuid::Uuid::new_v4().simple())
}

/// Every place the database keeps `needle`: files of the SQLite directory, or PostgreSQL tables.
async fn places_holding(app: &TestApp, needle: &str) -> Vec<String> {
    match app.backend {
        Backend::Sqlite => {
            let dir = app.dir.as_ref().unwrap().path();
            let mut found = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
            found
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let tables = client
                .query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
                     AND table_type = 'BASE TABLE' ORDER BY 1",
                    &[],
                )
                .await
                .unwrap();
            let mut found = Vec::new();
            for row in tables {
                let table: String = row.get(0);
                let sql = format!("SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0");
                let count: i64 = client.query_one(&sql, &[&needle]).await.unwrap().get(0);
                if count > 0 {
                    found.push(table);
                }
            }
            found
        }
    }
}

/// Stops the app's server and starts one on the same database with sealing on.
async fn restart_sealing(app: &mut TestApp) {
    app.stop().await;
    let mut config = tokenvault::settings::ServeConfig::new(app.database_url.clone().parse().unwrap());
    if app.backend == Backend::Postgres {
        config.encryption_key = Some(tokenvault::settings::Secret(pg_encryption_key()));
    }
    config.seal_token_values = true;
    let server = tokenvault::app::start(config).await.expect("server starts");
    app.addr = server.addr;
    app.url = server.url();
    app.server = Some(server);
}

/// Creates customer `customer_id` with a token of `value`, and a token event for it.
async fn populate(app: &TestApp, token: &str, customer_id: &str, value: &str) -> Value {
    app.create_customer(token, &json!({"customer_id": customer_id})).await;
    let created = app.create_token(token, customer_id, &json!({"type": TYPE, "value": value, "token_id": "t1"})).await;
    assert_eq!((&created["type"], &created["value"]), (&json!(TYPE), &json!(value)));
    let detail = app
        .post_json(
            &events_path(ACCOUNT),
            token,
            &json!({"token": {"type": TYPE, "value": value}, "event": {"event": "LOGIN", "status": "ACTIVE"}}),
        )
        .await
        .expect_json(200);
    assert_eq!(detail["token"]["value"], json!(value));
    assert_eq!(detail["customer"]["customer_id"], json!(customer_id));
    created
}

/// Everything that reads or looks up `value` answers as with values in clear.
async fn assert_value_served(app: &TestApp, token: &str, customer_id: &str, value: &str) {
    let listed = app.get(&tokens_path(ACCOUNT, customer_id), token).await.expect_json(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["value"], json!(value));
    let path = format!("{}?token_type={TYPE}&token_value={value}", customers_path(ACCOUNT));
    let found = app.get(&path, token).await.expect_json(200);
    assert_eq!(
        found.as_array().unwrap().iter().map(|c| c["customer_id"].clone()).collect::<Vec<_>>(),
        vec![json!(customer_id)]
    );
    let detail = app
        .post_json(&events_path(ACCOUNT), token, &json!({"token": {"type": TYPE, "value": value}}))
        .await
        .expect_json(200);
    assert_eq!(detail["token"]["value"], json!(value));
    assert_eq!(detail["status"], json!("ACTIVE"), "the token event recorded for the value is found");
}

async fn sealed_values_behave_as_plain_ones_and_never_reach_the_database(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.seal_token_values = true).await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    let value = distinctive("SEALED");
    let customer_id = distinctive("CUSTOMER");
    populate(&app, &token, &customer_id, &value).await;
    assert_value_served(&app, &token, &customer_id, &value).await;

    // Uniqueness of a live type+value still holds across customers.
    app.create_customer(&token, &json!({"customer_id": "other"})).await;
    let response = app.post_json(&tokens_path(ACCOUNT, "other"), &token, &json!({"type": TYPE, "value": value})).await;
    assert_json_eq(
        &response.expect_json(400),
        &json!({"error": {
            "code": "DUPLICATE_TOKEN",
            "message": "a live token with this type and value already belongs to a customer",
            "errors": [{"field": "type", "message": "is already in use"}, {"field": "value", "message": "is already in use"}],
        }}),
    );
    // The same value in another account is another sealed string, and no clash.
    let other_token = app.token_for(OTHER_ACCOUNT, &["admin:customers"]).await;
    app.post_json(&customers_path(OTHER_ACCOUNT), &other_token, &json!({"customer_id": "c"})).await.expect_json(200);
    let response =
        app.post_json(&tokens_path(OTHER_ACCOUNT, "c"), &other_token, &json!({"type": TYPE, "value": value})).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.json()["value"], json!(value));

    // Deleting answers with the plain value; clearing the events finds them.
    let deleted = app.delete(&format!("{}/t1", tokens_path(ACCOUNT, &customer_id)), &token).await.expect_json(200);
    assert_eq!(deleted["value"], json!(value));
    let response =
        app.delete_json(&events_path(ACCOUNT), &token, &json!({"token": {"type": TYPE, "value": value}})).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let detail = app
        .post_json(&events_path(ACCOUNT), &token, &json!({"token": {"type": TYPE, "value": value}}))
        .await
        .expect_json(200);
    assert_eq!(detail["events"], json!([]));

    // The value is nowhere in the database; the customer id, kept in clear, is (the control).
    assert_eq!(places_holding(&app, &value).await, Vec::<String>::new());
    assert!(!places_holding(&app, &customer_id).await.is_empty(), "the scan does not find a value stored in clear");

    // An export carries the sealed values; importing it checks them against the destination's key.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.jsonl");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(args)
            .env_remove("TOKENVAULT_ENCRYPTION_KEY")
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8(output.stderr).unwrap())
    };
    let (ok, stderr) = run(&["export", "--database-url", &app.database_url, "--output", export.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let source_key = match backend {
        Backend::Postgres => pg_encryption_key(),
        Backend::Sqlite => std::fs::read_to_string(app.dir.as_ref().unwrap().path().join("tokenvault.db.key")).unwrap(),
    };
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x11u8; 32]);
    let destination = format!("sqlite://{}/copy.db", dir.path().display());
    let (ok, stderr) =
        run(&["import", export.to_str().unwrap(), "--database-url", &destination, "--encryption-key", &wrong]);
    assert!(!ok);
    assert!(
        stderr.contains("the encryption key cannot open the exported customer token values"),
        "unexpected: {stderr}"
    );
    // The rows stored before the check (clients, keys, customers) were removed again: the same
    // destination takes the import with the right key.
    let (ok, stderr) = run(&[
        "import",
        export.to_str().unwrap(),
        "--database-url",
        &destination,
        "--encryption-key",
        source_key.trim(),
    ]);
    assert!(ok, "{stderr}");
}

async fn turning_sealing_on_converts_stored_values(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    let value = distinctive("BEFORE");
    let customer_id = distinctive("CUSTOMER");
    populate(&app, &token, &customer_id, &value).await;
    assert!(!places_holding(&app, &value).await.is_empty(), "in clear before sealing is turned on");

    restart_sealing(&mut app).await;
    assert_value_served(&app, &token, &customer_id, &value).await;
    // Stopped, so that SQLite has checkpointed its WAL (whose old pages held the value).
    app.stop().await;
    assert_eq!(places_holding(&app, &value).await, Vec::<String>::new());

    // A server started without the setting follows the database: values stay sealed.
    app.start().await;
    let later = distinctive("AFTER");
    app.create_customer(&token, &json!({"customer_id": "later"})).await;
    let created = app.create_token(&token, "later", &json!({"type": TYPE, "value": later})).await;
    assert_eq!(created["value"], json!(later));
    assert_value_served(&app, &token, &customer_id, &value).await;
    let path = format!("{}?token_type={TYPE}&token_value={later}", customers_path(ACCOUNT));
    assert_eq!(app.get(&path, &token).await.expect_json(200)[0]["customer_id"], json!("later"));
    assert_eq!(places_holding(&app, &later).await, Vec::<String>::new());

    // The switch is in the audit trail.
    let modes: Vec<Value> = app
        .store()
        .list_audit(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.action == "token_values.mode")
        .map(|record| json!([record.account_id, record.actor, record.details["mode"]]))
        .collect();
    assert_eq!(
        modes,
        vec![
            json!(["", "serve --seal-token-values", "converting"]),
            json!(["", "serve --seal-token-values", "sealed"])
        ]
    );
}
