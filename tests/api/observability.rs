//! What operators see: a `request-id` on every response, and `/metrics` in the Prometheus text
//! format counting requests by route pattern (never by id), method and status.

use serde_json::json;

use crate::helpers::*;

backend_tests!(every_response_carries_a_request_id, metrics_count_requests_by_route_pattern);

async fn every_response_carries_a_request_id(app: TestApp) {
    let first = app.send(reqwest::Method::GET, "/health", None, None, &[]).await;
    let second = app.send(reqwest::Method::GET, "/no-such-route", None, None, &[]).await;
    let ids: Vec<String> = [&first, &second].iter().map(|r| r.header("request-id").unwrap().to_owned()).collect();
    for id in &ids {
        assert_uuid_v4(id);
    }
    assert_ne!(ids[0], ids[1]);

    // A caller's own request id is kept, so it can be followed across systems.
    let echoed =
        app.send(reqwest::Method::GET, "/health", None, None, &[("request-id", "caller-chosen-id".to_owned())]).await;
    assert_eq!(echoed.header("request-id"), Some("caller-chosen-id"));
}

async fn metrics_count_requests_by_route_pattern(app: TestApp) {
    let admin = app.admin().await;
    let card = app
        .create_card_token(
            &admin.token,
            &json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"}),
        )
        .await;
    let id = card["id"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await.status, 200);
    }
    assert_eq!(app.get("/v1/card-tokens/unknown", &admin.token).await.status, 404);

    let metrics = app.send(reqwest::Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = &metrics.text;
    for line in [
        "tokenvault_http_requests_total{route=\"/v1/card-tokens\",method=\"POST\",status=\"201\"} 1\n",
        "tokenvault_http_requests_total{route=\"/v1/card-tokens/{token_id}\",method=\"GET\",status=\"200\"} 2\n",
        "tokenvault_http_requests_total{route=\"/v1/card-tokens/{token_id}\",method=\"GET\",status=\"404\"} 1\n",
        "tokenvault_http_request_duration_seconds_count{route=\"/v1/card-tokens/{token_id}\",method=\"GET\"} 3\n",
        // Nothing was shed or timed out.
        "tokenvault_http_requests_rejected_total{reason=\"overloaded\"} 0\n",
        "tokenvault_http_requests_rejected_total{reason=\"timeout\"} 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains(id), "a card token id leaked into the metrics");
    // Store gauges: no subscription, so nothing waits in the outbox.
    assert!(text.contains("tokenvault_webhook_outbox_pending 0\n"), "{text}");
    assert!(text.contains("tokenvault_db_pool_connections{state=\"idle\"} "), "{text}");
}
