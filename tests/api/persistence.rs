//! What a restart must keep (everything) and what the storage must not do (grow its WAL without
//! bound, hold on to the database after shutdown).

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(backend: everything_survives_a_restart, shutdown_releases_the_database);

async fn everything_survives_a_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let admin = app.admin().await;
    let jwks_before = app.send(reqwest::Method::GET, "/.well-known/jwks.json", None, None, &[]).await.expect_json(200);

    let customer = app
        .create_customer(&admin.token, &json!({"customer_id": "c-1", "first_name": "Ada", "email": "ada@example.com", "metadata": {"b": 2, "a": 1}}))
        .await;
    let deleted_customer = {
        app.create_customer(&admin.token, &json!({"customer_id": "gone"})).await;
        app.delete(&customer_path(ACCOUNT, "gone"), &admin.token).await.expect_json(200)
    };
    let t1 = app
        .create_token(
            &admin.token,
            "c-1",
            &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1", "metadata": {"z": 0, "y": [1]}}),
        )
        .await;
    app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v2", "token_id": "t-2"})).await;
    let t2 = app.delete(&format!("{}/t-2", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
    app.token_detail(&admin.token, &json!({"token": {"type": "sha1:email", "value": "v1"}, "event": {"event": "e", "status": "OPT_OUT", "expires_at": "2099-01-01T00:00:00Z"}}))
        .await;
    let detail = app.token_detail(&admin.token, &json!({"token": {"type": "sha1:email", "value": "v1"}})).await;
    let card = app.create_card_token(&admin.token, &crate::card_tokens::full_body("tok_survives")).await;
    let suspended = app
        .put_json(
            &format!("/v1/card-tokens/{}/status", card["id"].as_str().unwrap()),
            &admin.token,
            &json!({"status": "SUSPENDED"}),
        )
        .await
        .expect_json(200);
    let deleted_card = {
        let other = app
            .create_card_token(
                &admin.token,
                &json!({"card_brand": "mastercard", "payment_product_type": "x", "token": "tok_deleted"}),
            )
            .await;
        app.delete(&format!("/v1/card-tokens/{}", other["id"].as_str().unwrap()), &admin.token).await.expect_json(200)
    };
    let events = app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200);

    app.restart().await;

    // The old access token and the client's credentials still work; the keys are the same.
    let jwks_after = app.send(reqwest::Method::GET, "/.well-known/jwks.json", None, None, &[]).await.expect_json(200);
    assert_json_eq(&jwks_after, &jwks_before);
    let response = app
        .request_token(
            ACCOUNT,
            Some(&basic(&admin.client_id, &admin.client_secret)),
            &json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)}),
        )
        .await;
    let fresh = response.expect_json(200)["access_token"].as_str().unwrap().to_owned();

    for token in [&admin.token, &fresh] {
        let response = app.get(&customer_path(ACCOUNT, "c-1"), token).await;
        assert_json_eq(&response.expect_json(200), &customer);
        let response = app.get(&format!("{}?include_deleted=true", customers_path(ACCOUNT)), token).await;
        assert_json_eq(&response.expect_json(200), &json!([customer, deleted_customer]));
        let response = app.get(&tokens_path(ACCOUNT, "c-1"), token).await;
        assert_json_eq(&response.expect_json(200), &json!([t1, t2]));
        let response =
            app.post_json(&events_path(ACCOUNT), token, &json!({"token": {"type": "sha1:email", "value": "v1"}})).await;
        assert_json_eq(&response.expect_json(200), &detail);
        let response = app.get(&events_path(ACCOUNT), token).await;
        assert_json_eq(&response.expect_json(200), &events);
        let response = app.get(&format!("/v1/card-tokens/{}", card["id"].as_str().unwrap()), token).await;
        assert_json_eq(&response.expect_json(200), &suspended);
        let response = app.get("/v1/card-tokens?include_deleted=true", token).await;
        assert_json_eq(&response.expect_json(200), &json!([suspended, deleted_card]));
    }

    // Uniqueness rules and cursors hold across the restart.
    let response =
        app.post_json(&tokens_path(ACCOUNT, "c-1"), &admin.token, &json!({"type": "sha1:email", "value": "v1"})).await;
    assert_json_eq(
        &response.expect_json(400),
        &json!({"error": {
            "code": "DUPLICATE_TOKEN",
            "message": "a live token with this type and value already belongs to a customer",
            "errors": [{"field": "type", "message": "is already in use"}, {"field": "value", "message": "is already in use"}],
        }}),
    );
    let response = app.get(&format!("{}?limit=1", tokens_path(ACCOUNT, "c-1")), &admin.token).await;
    assert_eq!(response.header("paging-token"), t1["id"].as_str());
    let t3 = app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v3"})).await;
    let response = app
        .get(&format!("{}?starting_after={}", tokens_path(ACCOUNT, "c-1"), t1["id"].as_str().unwrap()), &admin.token)
        .await;
    assert_json_eq(&response.expect_json(200), &json!([t2, t3]));

    // A second restart, for good measure: writes after a restart persist too.
    app.restart().await;
    let response = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([t1, t2, t3]));
    app.stop().await;
}

async fn shutdown_releases_the_database(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let addr = app.addr;
    app.stop().await;

    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening on {addr}");
    match backend {
        Backend::Postgres => {
            let (client, connection) =
                tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let name = app.database_url.rsplit('/').next().unwrap().to_owned();
            // Closing is asynchronous on both sides (each connection's driver task sends
            // Terminate, and a TLS close_notify, then the backend exits), so allow it a moment;
            // a connection the pool kept would stay.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let count: i64 = client
                    .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&name])
                    .await
                    .unwrap()
                    .get(0);
                if count == 0 {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{count} connections to {name} left open after shutdown");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Backend::Sqlite => {
            // A clean shutdown leaves no un-checkpointed WAL behind.
            let dir = app.dir.as_ref().unwrap().path();
            let wal = dir.join("tokenvault.db-wal");
            let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            assert_eq!(len, 0, "{} still holds {len} bytes after shutdown", wal.display());
        }
    }
    app.start().await;
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_eq!(response.expect_json(200)["customer_id"], json!("c-1"));
}

/// docs/wire-decisions.md: statements are stepped to completion, so checkpoints can reset the WAL and it
/// stays bounded after a burst of writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_after_a_burst_of_writes() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let padding = "p".repeat(3000);
    let writes = 600usize;
    let concurrency = 8usize;
    let app_ref = &app;
    let mut handles = vec![];
    for worker in 0..concurrency {
        let token = admin.token.clone();
        let padding = padding.clone();
        handles.push(async move {
            for i in (worker..writes).step_by(concurrency) {
                let body = json!({"customer_id": format!("c-{i}"), "metadata": {"padding": padding}});
                let response = app_ref.post_json(&customers_path(ACCOUNT), &token, &body).await;
                assert_eq!(response.status.as_u16(), 200, "{}", response.text);
                let token_body =
                    json!({"type": "sha1:email", "value": format!("v-{i}"), "metadata": {"padding": padding}});
                let response = app_ref.post_json(&tokens_path(ACCOUNT, &format!("c-{i}")), &token, &token_body).await;
                assert_eq!(response.status.as_u16(), 201, "{}", response.text);
            }
        });
    }
    futures_join_all(handles).await;

    let dir = app.dir.as_ref().unwrap().path();
    let db = std::fs::metadata(dir.join("tokenvault.db")).map(|m| m.len()).unwrap_or(0);
    let wal = std::fs::metadata(dir.join("tokenvault.db-wal")).map(|m| m.len()).unwrap_or(0);
    // ~1200 writes of several KiB each: without checkpoints the WAL would pass 10 MiB; with
    // them it stays near the 1000-page auto-checkpoint size.
    assert!(wal < 8 * 1024 * 1024, "WAL is {wal} bytes (database {db} bytes) after {writes} customers and tokens");
    let list = app.get(&format!("{}?limit=1&total=true", customers_path(ACCOUNT)), &admin.token).await;
    assert_eq!(list.header("total-count"), Some(writes.to_string().as_str()));
    let _: Value = list.json();
}

/// Runs futures concurrently on this task (no extra dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
