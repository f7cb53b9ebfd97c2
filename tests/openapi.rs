//! The generated OpenAPI document (`GET /openapi.json`) and the reference page (`GET /docs`):
//! the document is structurally valid OpenAPI 3.1, it and the router cannot disagree about a
//! route, its scopes are the ones the handlers check, its schemas match what the server
//! serialises, and the page renders in headless Chromium (skipped when Chromium is absent).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokenvault::app::RunningServer;
use tokenvault::domain::AccountId;
use tokenvault::settings::ServeConfig;

const ACCOUNT: &str = "T00000001";
const METHODS: [&str; 6] = ["get", "post", "put", "delete", "patch", "head"];

/// tokenvault's own operations: everything else is Dintero's API.
const EXTENSIONS: [&str; 24] = [
    "card_tokens_post",
    "card_tokens_token_id_status_put",
    "aid_payments_card_tokens_token_id_status_put",
    "health_get",
    "jwks_get",
    "metrics_get",
    "aid_sandbox_reset_post",
    "aid_sandbox_faults_post",
    "aid_sandbox_faults_get",
    "aid_sandbox_faults_delete",
    "aid_sandbox_faults_fault_id_delete",
    "aid_sandbox_webhooks_trigger_post",
    "aid_sandbox_clock_get",
    "aid_sandbox_clock_put",
    "aid_sandbox_clock_delete",
    "openapi_get",
    "docs_get",
    "tokenvault_session_complete_post",
    "tokenvault_view_sid_post",
    "tokenvault_hooks_hid_deliveries_did_resend_post",
    "admin_unseal_post",
    "aid_sandbox_requests_get",
    "aid_sandbox_requests_id_get",
    "aid_sandbox_requests_delete",
];
const PUBLIC: [&str; 7] = [
    "health_get",
    "jwks_get",
    "metrics_get",
    "openapi_get",
    "docs_get",
    "checkout_sid_html_get",
    "tokenvault_view_sid_post",
];

struct App {
    server: RunningServer,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::new(format!("sqlite://{}/tv.db", dir.path().display()).parse().unwrap());
        // The webhook subscription of the walk-through names 127.0.0.1.
        config.webhooks.allow_private_targets = true;
        let server = tokenvault::app::start(config).await.expect("server starts");
        App { server, http: reqwest::Client::new(), _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn document(&self) -> Value {
        let response = self.http.get(self.url("/openapi.json")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
        response.json().await.unwrap()
    }

    /// An access token for a new client of [`ACCOUNT`] with `scopes`.
    async fn token(&self, scopes: &[&str]) -> String {
        let account = AccountId::parse("aid", ACCOUNT).unwrap();
        let client = tokenvault::auth::clients::create_client(
            self.server.store.as_ref(),
            &account,
            scopes.iter().map(|s| s.to_string()).collect(),
        )
        .await
        .unwrap();
        let response = self
            .http
            .post(self.url(&format!("/v1/accounts/{ACCOUNT}/auth/token")))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every operation of the document: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: unexpected key {method}");
            all.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    all
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows `$ref`s (a response, schema or parameter) to what they name.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => deref(doc, resolve(doc, reference).unwrap_or_else(|| panic!("unresolved {reference}"))),
        None => value,
    }
}

fn collect_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref" {
                    found.push(inner.as_str().expect("$ref is a string").to_owned());
                } else {
                    collect_refs(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, found)),
        _ => {}
    }
}

fn placeholders(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

fn scopes_of(operation: &Value) -> Option<Vec<String>> {
    let requirement = operation["security"].as_array()?.first()?;
    let scopes = requirement.get("bearerAuth")?.as_array()?;
    Some(scopes.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
}

/// The path with each placeholder replaced by a value of the right shape.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{aid}" | "{oid}" => ACCOUNT.to_owned(),
            "{hid}" => "00000000-0000-4000-8000-000000000000".to_owned(),
            s if s.starts_with('{') => "placeholder".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_structurally_valid_openapi_3_1() {
    let app = App::start().await;
    let doc = app.document().await;
    std::fs::write(output_dir().join("openapi.json"), serde_json::to_string_pretty(&doc).unwrap()).unwrap();

    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "tokenvault");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "few references: {}", refs.len());
    for reference in &refs {
        assert!(reference.starts_with("#/components/"), "{reference}");
        assert!(resolve(&doc, reference).is_some(), "unresolved {reference}");
    }

    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["bearerAuth"]["bearerFormat"], "JWT");
    assert_eq!(schemes["clientAuth"]["scheme"], "basic");
    let tags: BTreeSet<&str> = doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();

    let mut operation_ids = BTreeSet::new();
    let mut extensions = BTreeSet::new();
    let mut public = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(operation_ids.insert(id.to_owned()), "{at}: operationId {id} is not unique");
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at}: no summary");
        let op_tags = operation["tags"].as_array().unwrap_or_else(|| panic!("{at}: no tags"));
        assert!(op_tags.iter().all(|t| tags.contains(t.as_str().unwrap())), "{at}: undeclared tag");
        if operation["x-tokenvault-extension"] == json!(true) {
            extensions.insert(id.to_owned());
        }

        // Path parameters: exactly the template's placeholders, all required.
        let mut declared = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = deref(&doc, parameter);
            let (name, location) = (parameter["name"].as_str().unwrap(), parameter["in"].as_str().unwrap());
            assert!(["path", "query", "header", "cookie"].contains(&location), "{at}: {name} in {location}");
            assert!(seen.insert((name, location)), "{at}: {name} declared twice");
            assert!(parameter.get("schema").is_some(), "{at}: {name} has no schema");
            if location == "path" {
                assert_eq!(parameter["required"], true, "{at}: path parameter {name} not required");
                declared.insert(name.to_owned());
            }
        }
        assert_eq!(declared, placeholders(&path), "{at}: path parameters");

        // Responses: at least one success (or 501 for Dintero's operations tokenvault does not
        // implement), every one described, errors in Dintero's body.
        let responses = operation["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(responses.keys().any(|s| s.starts_with('2') || s == "303" || s == "501"), "{at}: no success response");
        for (status, response) in responses {
            let response = deref(&doc, response);
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{at} {status}: no description");
            assert!(response["headers"].get("request-id").is_some(), "{at} {status}: no request-id header");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json; charset=utf-8"]["schema"];
                assert_eq!(schema["$ref"], "#/components/schemas/Error", "{at} {status}");
            }
            if status == "429" || status == "503" {
                assert!(response["headers"].get("Retry-After").is_some(), "{at} {status}: no Retry-After");
            }
        }
        assert!(responses.contains_key("503"), "{at}: 503 (timeouts, load shedding) missing");

        // Security: an explicit list; empty only for the public operations.
        let security = operation["security"].as_array().unwrap_or_else(|| panic!("{at}: no security"));
        if security.is_empty() {
            public.insert(id.to_owned());
        }
        for requirement in security {
            for (scheme, scopes) in requirement.as_object().unwrap() {
                assert!(schemes.contains_key(scheme), "{at}: unknown scheme {scheme}");
                if scheme == "bearerAuth" {
                    assert!(!scopes.as_array().unwrap().is_empty(), "{at}: no scopes");
                    assert!(responses.contains_key("401") && responses.contains_key("403"), "{at}: 401/403");
                    assert!(responses.contains_key("429"), "{at}: 429 (per-client call limit)");
                }
            }
        }

        // Lists page with headers.
        let paged = operation["parameters"].as_array().into_iter().flatten().any(|p| deref(&doc, p)["name"] == "limit");
        if paged {
            let headers = &responses["200"]["headers"];
            for header in ["paging-token", "link", "total-count"] {
                assert!(headers.get(header).is_some(), "{at}: no {header} header");
            }
        }
    }
    let expected_extensions: BTreeSet<String> = EXTENSIONS.iter().map(|e| e.to_string()).collect();
    assert_eq!(extensions, expected_extensions);
    assert_eq!(public, PUBLIC.iter().map(|e| e.to_string()).collect::<BTreeSet<_>>());
    for known in [
        "aid_customers_cid_tokens_post",
        "aid_customers_cid_tokens_get",
        "card_tokens_get",
        "aid_auths_oauth_token_post",
    ] {
        assert!(operation_ids.contains(known), "Dintero's operationId {known} missing");
    }

    // `Idempotency-Key` on every POST and DELETE but the token endpoint, and on no other
    // operation; with its 422 and 409 (in progress, with Retry-After).
    let mut keyed = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let parameter = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| deref(&doc, p))
            .find(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("Idempotency-Key")));
        let expected = matches!(method.as_str(), "post" | "delete") && path != "/v1/accounts/{oid}/auth/token";
        assert_eq!(parameter.is_some(), expected, "{at}: Idempotency-Key documented: {}", parameter.is_some());
        let Some(parameter) = parameter else { continue };
        keyed.insert(at.clone());
        assert_eq!(parameter["name"], "Idempotency-Key");
        assert_eq!(parameter["in"], "header", "{at}");
        assert_ne!(parameter["required"], true, "{at}: the key is optional");
        assert_eq!(parameter["schema"]["maxLength"], 255, "{at}");
        assert_eq!(parameter["schema"]["minLength"], 1, "{at}");
        let responses = &operation["responses"];
        let unprocessable = deref(&doc, &responses["422"]);
        assert!(unprocessable["description"].as_str().unwrap().contains("Idempotency-Key"), "{at}: 422");
        let conflict = deref(&doc, &responses["409"]);
        assert!(conflict["headers"].get("Retry-After").is_some(), "{at}: 409 without Retry-After");
        for (status, response) in responses.as_object().unwrap() {
            if status.starts_with('2') {
                assert!(deref(&doc, response)["headers"].get("idempotent-replayed").is_some(), "{at} {status}");
            }
        }
    }
    assert!(keyed.contains("POST /v1/card-tokens") && keyed.contains("DELETE /v1/card-tokens/{token_id}"));
    assert!(keyed.len() >= 10, "{keyed:?}");
    // Nowhere on reads: only the operations above (and the shared components) mention it.
    for (path, method, operation) in operations(&doc) {
        if !keyed.contains(&format!("{} {path}", method.to_uppercase())) {
            let parameters = serde_json::to_string(&operation["parameters"]).unwrap();
            assert!(!parameters.to_ascii_lowercase().contains("idempotency-key"), "{method} {path}");
        }
    }

    // The documented constraints of the shared parameters.
    let list = &doc["paths"]["/v1/accounts/{aid}/customers/users/{customer_id}/tokens"]["get"];
    let parameter =
        |name: &str| list["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(parameter("aid")["schema"]["pattern"], r"^[PT]{1}\d{8}$");
    assert_eq!(parameter("limit")["schema"]["minimum"], 1);
    assert_eq!(parameter("limit")["schema"]["maximum"], 100);
    assert_eq!(parameter("limit")["schema"]["default"], 10);
    assert_eq!(parameter("include_deleted")["schema"]["default"], true);
    let cards = &doc["paths"]["/v1/card-tokens"]["get"]["parameters"];
    let status = cards.as_array().unwrap().iter().find(|p| p["name"] == "status").unwrap();
    assert_eq!((status["style"].as_str(), status["explode"].as_bool()), (Some("form"), Some(true)));
    let include_deleted = cards.as_array().unwrap().iter().find(|p| p["name"] == "include_deleted").unwrap();
    assert_eq!(include_deleted["schema"]["default"], false);
    let timestamp = &doc["components"]["schemas"]["CustomerToken"]["properties"]["created_at"];
    assert_eq!((timestamp["type"].as_str(), timestamp["format"].as_str()), (Some("string"), Some("date-time")));
    app.server.shutdown().await;
}

/// The served paths, read from the router itself (axum's `Debug` lists each route's path).
fn served_paths() -> BTreeSet<String> {
    let debug = format!("{:?}", tokenvault::http::app_routes());
    // The fallback router's own catch-all routes come after `fallback_router`.
    let routes = debug.split("fallback_router").next().unwrap();
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(start) = rest.find("RouteId(") {
        rest = &rest[start..];
        let Some(quote) = rest.find(": \"") else { break };
        let after = &rest[quote + 3..];
        let end = after.find('"').unwrap();
        let path = &after[..end];
        if !path.contains("__private__") {
            paths.insert(path.to_owned());
        }
        rest = &after[end..];
    }
    paths
}

#[tokio::test]
async fn the_router_and_the_document_name_the_same_routes() {
    let app = App::start().await;
    let doc = app.document().await;
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served = served_paths();
    assert!(served.len() >= 10, "could not read the router's paths: {served:?}");
    assert_eq!(served, documented, "served paths (left) and documented paths (right) differ");

    // Each documented operation reaches a handler; each other method is 405.
    let operations = operations(&doc);
    assert!(operations.len() >= 25, "{}", operations.len());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            // HEAD is served wherever GET is (HTTP semantics: axum answers it with the GET
            // handler); only a HEAD of its own (aid_customers_head) is documented.
            if method == "head" && item.get("head").is_none() && item.get("get").is_some() {
                continue;
            }
            let url = app.url(&concrete(path));
            let response = app
                .http
                .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            let at = format!("{} {path}", method.to_uppercase());
            if item.get(method).is_some() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{at}: documented but 405");
                assert!(
                    !(status == StatusCode::NOT_FOUND && body.contains("resource not found")),
                    "{at}: documented but not routed"
                );
                let documented: Vec<&String> = item[method]["responses"].as_object().unwrap().keys().collect();
                assert!(documented.iter().any(|s| **s == status.as_str()), "{at}: {status} is not documented");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{at}: served but not documented");
            }
        }
    }
    // And the fallback is what the check above would have seen for a missing route.
    let response = app.http.get(app.url("/v1/not-a-route")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("resource not found"));
    app.server.shutdown().await;
}

#[tokio::test]
async fn documented_scopes_are_the_ones_the_handlers_check() {
    let app = App::start().await;
    let doc = app.document().await;
    let token = app.token(&["read:nothing"]).await;
    let mut checked = 0;
    for (path, method, operation) in operations(&doc) {
        let Some(scopes) = scopes_of(&operation) else { continue };
        let request = app
            .http
            .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), app.url(&concrete(&path)))
            .bearer_auth(&token);
        let response = request.send().await.unwrap();
        let at = format!("{} {path}", method.to_uppercase());
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{at}");
        if method == "head" {
            // No body to read the message from.
            checked += 1;
            continue;
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["message"],
            format!("the access token lacks the required scope: one of {}", scopes.join(", ")),
            "{at}: documented scopes differ from the ones checked"
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
    app.server.shutdown().await;
}

/// A small JSON-schema check: types, enums, required fields, no undocumented fields (unless the
/// schema allows them) and the documented field order.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = deref(doc, schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = variants.iter().any(|variant| {
            let mut inner = Vec::new();
            conforms(doc, variant, value, at, &mut inner);
            inner.is_empty()
        });
        if !ok {
            problems.push(format!("{at}: matches no variant"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let documented = types.is_empty() || types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
    if !documented {
        problems.push(format!("{at}: {actual}, documented {types:?}"));
        return;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            problems.push(format!("{at}: {value} not in {values:?}"));
        }
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"), problems);
            }
        }
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(required.as_str().unwrap()) {
                    problems.push(format!("{at}: required {required} missing"));
                }
            }
            let open = schema.get("additionalProperties").is_some_and(|a| a != &json!(false));
            let mut order = Vec::new();
            for (key, inner) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => {
                        order.push(properties.unwrap().keys().position(|k| k == key).unwrap());
                        conforms(doc, property, inner, &format!("{at}.{key}"), problems);
                    }
                    None if open || properties.is_none() => {}
                    None => problems.push(format!("{at}: field {key} is not documented")),
                }
            }
            if !open && order.windows(2).any(|w| w[0] > w[1]) {
                problems.push(format!("{at}: fields are not in the documented order"));
            }
        }
        _ => {}
    }
}

fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let response = deref(doc, &doc["paths"][path][method]["responses"][status.to_string()]);
    &response["content"]["application/json; charset=utf-8"]["schema"]
}

#[tokio::test]
async fn success_and_error_bodies_match_their_schemas() {
    let app = App::start().await;
    let doc = app.document().await;
    let token = app.token(&["admin:customers", "admin:checkout", "admin:hooks"]).await;
    let aid = format!("/v1/accounts/{ACCOUNT}");
    let calls: Vec<(Method, String, &str, Option<Value>, u16)> = vec![
        (
            Method::POST,
            format!("{aid}/customers/users"),
            "/v1/accounts/{aid}/customers/users",
            Some(json!({"customer_id": "c1", "email": "a@example.com", "first_name": "Ada", "favorite_store": "x"})),
            200,
        ),
        (Method::GET, format!("{aid}/customers/users?total=true"), "/v1/accounts/{aid}/customers/users", None, 200),
        (
            Method::POST,
            format!("{aid}/customers/users/c1/tokens"),
            "/v1/accounts/{aid}/customers/users/{customer_id}/tokens",
            Some(json!({"type": "sha1:email", "value": "v1", "metadata": {"mask_pan": "**** 3477"}})),
            201,
        ),
        (
            Method::GET,
            format!("{aid}/customers/users/c1/tokens"),
            "/v1/accounts/{aid}/customers/users/{customer_id}/tokens",
            None,
            200,
        ),
        (
            Method::POST,
            format!("{aid}/customers/tokens/events"),
            "/v1/accounts/{aid}/customers/tokens/events",
            Some(json!({"token": {"type": "sha1:email", "value": "v1"}, "event": {"event": "e", "status": "OPT_OUT"}})),
            200,
        ),
        (
            Method::GET,
            format!("{aid}/customers/tokens/events"),
            "/v1/accounts/{aid}/customers/tokens/events",
            None,
            200,
        ),
        (
            Method::POST,
            "/v1/card-tokens".to_owned(),
            "/v1/card-tokens",
            Some(
                json!({"id": "k1", "card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": "t", "masked_pan": "476173******0416", "pan_expiry_date": "09/2030", "links": [{"href": "https://x/a.png", "rel": "digital_card_art", "mime_type": "image/png"}], "external_token_references": ["old"]}),
            ),
            201,
        ),
        (
            Method::PUT,
            "/v1/card-tokens/k1/status".to_owned(),
            "/v1/card-tokens/{token_id}/status",
            Some(json!({"status": "SUSPENDED"})),
            200,
        ),
        (
            Method::DELETE,
            format!("{aid}/payments/card-tokens/k1"),
            "/v1/accounts/{aid}/payments/card-tokens/{token_id}",
            Some(json!({"reason": "Profile deleted"})),
            200,
        ),
        (Method::GET, "/v1/card-tokens?include_deleted=true".to_owned(), "/v1/card-tokens", None, 200),
        (
            Method::POST,
            format!("{aid}/hooks/subscriptions"),
            "/v1/accounts/{aid}/hooks/subscriptions",
            Some(json!({"config": {"url": "http://127.0.0.1:9/hook"}, "events": ["checkout_token_add"]})),
            200,
        ),
        (Method::GET, format!("{aid}/hooks/subscriptions"), "/v1/accounts/{aid}/hooks/subscriptions", None, 200),
        (
            Method::DELETE,
            format!("{aid}/customers/users/c1?delete_tokens=true"),
            "/v1/accounts/{aid}/customers/users/{customer_id}",
            None,
            200,
        ),
        (
            Method::POST,
            format!("{aid}/sandbox/faults"),
            "/v1/accounts/{aid}/sandbox/faults",
            Some(
                json!({"method": "GET", "path": "/nowhere", "client_id": "c", "fault": {"type": "status", "status": 429, "retry_after": 3}, "frequency": {"type": "times", "times": 2}}),
            ),
            201,
        ),
        (
            Method::POST,
            format!("{aid}/sandbox/faults"),
            "/v1/accounts/{aid}/sandbox/faults",
            Some(
                json!({"path": "/nowhere/**", "fault": {"type": "delay", "delay_ms": 5}, "frequency": {"type": "probability", "probability": 0.5}}),
            ),
            201,
        ),
        (Method::GET, format!("{aid}/sandbox/faults"), "/v1/accounts/{aid}/sandbox/faults", None, 200),
        (Method::DELETE, format!("{aid}/sandbox/faults"), "/v1/accounts/{aid}/sandbox/faults", None, 200),
        (Method::GET, "/health".to_owned(), "/health", None, 200),
        (Method::GET, "/.well-known/jwks.json".to_owned(), "/.well-known/jwks.json", None, 200),
        (Method::GET, format!("{aid}/customers/users?limit=0"), "/v1/accounts/{aid}/customers/users", None, 400),
        (Method::GET, "/v1/card-tokens/missing".to_owned(), "/v1/card-tokens/{token_id}", None, 404),
        // The request journal of the calls above (whichever are written by now).
        (Method::GET, format!("{aid}/sandbox/requests?limit=100"), "/v1/accounts/{aid}/sandbox/requests", None, 200),
    ];
    let mut problems = Vec::new();
    for (method, url, path, body, status) in calls {
        let mut request = app.http.request(method.clone(), app.url(&url)).bearer_auth(&token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let at = format!("{method} {url}");
        assert_eq!(response.status().as_u16(), status, "{at}");
        for header in response.headers().keys() {
            if ["paging-token", "total-count", "link", "request-id", "retry-after"].contains(&header.as_str()) {
                let documented =
                    deref(&doc, &doc["paths"][path][method.as_str().to_lowercase()]["responses"][status.to_string()]);
                let names: Vec<String> =
                    documented["headers"].as_object().unwrap().keys().map(|k| k.to_lowercase()).collect();
                assert!(names.contains(&header.as_str().to_owned()), "{at}: header {header} not documented");
            }
        }
        let value: Value = response.json().await.unwrap();
        let schema = response_schema(&doc, path, &method.as_str().to_lowercase(), status);
        assert!(schema.is_object(), "{at}: no schema");
        conforms(&doc, schema, &value, &at, &mut problems);
    }
    // aid_source_hooks_hid_deliveries_get and aid_source_hooks_hid_deliveries_did_get: the new
    // subscription's ping, listed and in detail (its attempt, if made yet, is refused: the
    // target is internal), and the resend extension's 202.
    let hooks = format!("{aid}/hooks/subscriptions");
    let created: Value =
        app.http.get(app.url(&hooks)).bearer_auth(&token).send().await.unwrap().json::<Value>().await.unwrap()[0]
            .clone();
    let hid = created["id"].as_str().unwrap();
    let list = format!("{hooks}/{hid}/deliveries");
    let listed: Value = app.http.get(app.url(&list)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let template = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries";
    conforms(&doc, response_schema(&doc, template, "get", 200), &listed, "GET deliveries", &mut problems);
    let ping = listed[0]["id"].as_str().unwrap();
    let detail: Value = app
        .http
        .get(app.url(&format!("{list}/{ping}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let template = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries/{delivery_id}";
    conforms(&doc, response_schema(&doc, template, "get", 200), &detail, "GET delivery", &mut problems);
    let response = app.http.post(app.url(&format!("{list}/{ping}/resend"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let resent: Value = response.json().await.unwrap();
    let template = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries/{delivery_id}/resend";
    conforms(&doc, response_schema(&doc, template, "post", 202), &resent, "POST resend", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    app.server.shutdown().await;
}

/// Runs Chromium with a deadline, its output going to files (a pipe nobody reads while it runs
/// would fill up and stall it); returns stdout, or `None` when it did not finish in time.
fn chromium(args: &[String], out: &Path) -> Option<String> {
    let stdout = std::fs::File::create(out.with_extension("stdout")).ok()?;
    let stderr = std::fs::File::create(out.with_extension("stderr")).ok()?;
    let mut child =
        Command::new("/usr/bin/chromium").args(args).stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().ok()?.is_some() {
            return std::fs::read_to_string(out.with_extension("stdout")).ok();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_renders_in_headless_chromium() {
    let app = App::start().await;
    let response = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "external asset");
    assert!(html.contains("/openapi.json"));

    if !Path::new("/usr/bin/chromium").exists() {
        println!("SKIPPED: /usr/bin/chromium is absent (apt-get install chromium); /docs was not rendered");
        app.server.shutdown().await;
        return;
    }
    let doc = app.document().await;
    let profile = tempfile::tempdir().unwrap();
    let screenshot = output_dir().join("docs.png");
    let _ = std::fs::remove_file(&screenshot);
    let common = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=15000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(app.url("/docs"));
        args
    };
    let url = app.url("/docs");
    let dom = tokio::task::spawn_blocking({
        let args = common(&["--dump-dom"]);
        let out = output_dir().join("docs-dom");
        move || chromium(&args, &out)
    })
    .await
    .unwrap()
    .expect("chromium --dump-dom finished");
    assert!(dom.contains("data-state=\"rendered\""), "{url} did not render: {}", &dom[..dom.len().min(2000)]);
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap();
        assert!(dom.contains(&format!("id=\"op-{id}\"")), "operation {id} ({method} {path}) not rendered");
    }
    for schema in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(dom.contains(&format!("id=\"schema-{schema}\"")), "schema {schema} not rendered");
    }
    assert!(dom.contains("paging-token") && dom.contains("Retry-After") && dom.contains("admin:checkout"));

    tokio::task::spawn_blocking({
        let args = common(&[&format!("--screenshot={}", screenshot.display()), "--window-size=1280,2000"]);
        let out = output_dir().join("docs-screenshot");
        move || chromium(&args, &out)
    })
    .await
    .unwrap()
    .expect("chromium --screenshot finished");
    assert!(screenshot.exists(), "no screenshot; see docs-screenshot.stderr in {}", output_dir().display());
    println!("screenshot of /docs: {}", screenshot.display());
    app.server.shutdown().await;
}

#[test]
fn extension_list_is_consistent() {
    // Guards the constants above against typos: every public operation is an extension, but
    // Dintero's own session page (opened by the customer's browser without an access token there
    // too).
    let extensions: BTreeMap<&str, ()> = EXTENSIONS.iter().map(|e| (*e, ())).collect();
    assert!(PUBLIC.iter().filter(|p| **p != "checkout_sid_html_get").all(|p| extensions.contains_key(p)));
}

/// Issue 17, item 7: what Dintero's spec lacks is marked `x-tokenvault-extension: true`, what it
/// has is not, and Dintero's operations carry Dintero's operationIds.
#[tokio::test]
async fn dintero_differences_are_marked_as_extensions() {
    let app = App::start().await;
    let doc = app.document().await;
    let marked = |value: &Value| value["x-tokenvault-extension"] == json!(true);
    let by_id: BTreeMap<String, Value> =
        operations(&doc).into_iter().map(|(_, _, op)| (op["operationId"].as_str().unwrap().to_owned(), op)).collect();

    // Every Dintero operation tokenvault serves, by the operationId of Dintero's spec
    // (spec-customers.yaml, spec-checkout.yaml, spec-payments.yaml, the webhooks spec: S-CUST,
    // D-001/D-004/D-CTGET, S-PAY, S-HOOKS).
    for id in [
        "aid_auths_oauth_token_post",
        "aid_customers_post",
        "aid_customers_get",
        "aid_customers_cid_get",
        "aid_customers_cid_delete",
        "aid_customers_cid_tokens_post",
        "aid_customers_cid_tokens_get",
        "aid_customers_cid_tokens_tid_delete",
        "aid_customers_tokens_events_get",
        "aid_customers_tokens_events_post",
        "aid_customers_tokens_events_delete",
        "card_tokens_get",
        "card_tokens_token_id_get",
        "card_tokens_token_id_delete",
        "aid_source_hooks_get",
        "aid_source_hooks_post",
        "aid_source_hooks_hid_get",
        "aid_source_hooks_hid_delete",
        "aid_source_hooks_hid_deliveries_get",
        "aid_source_hooks_hid_deliveries_did_get",
        "aid_source_hooks_hid_ping_post",
    ] {
        let operation = by_id.get(id).unwrap_or_else(|| panic!("Dintero's operationId {id} missing"));
        assert!(!marked(operation), "{id} is Dintero's, not an extension");
    }
    // S-HOOKS names the subscription `hid` in every path, and the delivery `delivery_id`.
    for (path, _, operation) in operations(&doc).iter().filter(|(path, _, _)| path.contains("/hooks/subscriptions/")) {
        assert!(path.starts_with("/v1/accounts/{aid}/hooks/subscriptions/{hid}"), "{path}");
        let names: BTreeSet<String> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| deref(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, placeholders(path), "{path}");
    }
    // The resend is tokenvault's (issue 18 part 4).
    assert!(marked(&by_id["tokenvault_hooks_hid_deliveries_did_resend_post"]));

    let parameter = |id: &str, name: &str| -> Value {
        by_id[id]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| deref(&doc, p).clone())
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{id}: no parameter {name}"))
    };
    // `total`: Dintero names it for customer tokens and customers, not for card tokens
    // (card_tokens_get: customer_id, relationship_id, status, include_deleted, limit,
    // starting_after) nor token events (aid_customers_tokens_events_get: limit, starting_after,
    // since_datetime, deleted_since).
    for id in ["card_tokens_get", "aid_payments_card_tokens_get", "aid_customers_tokens_events_get"] {
        assert!(marked(&parameter(id, "total")), "{id}: total");
        assert!(!marked(&parameter(id, "limit")), "{id}: limit");
        assert!(!marked(&parameter(id, "starting_after")), "{id}: starting_after");
    }
    for id in ["aid_customers_cid_tokens_get", "aid_customers_get"] {
        assert!(!marked(&parameter(id, "total")), "{id}: total is Dintero's");
    }
    // aid_source_hooks_hid_deliveries_get: Dintero names only `aid` and `hid`.
    for name in ["limit", "starting_after", "total"] {
        assert!(marked(&parameter("aid_source_hooks_hid_deliveries_get", name)), "deliveries: {name}");
    }
    // aid_customers_tokens_events_get `deleted_since`: Dintero's, documented, a date-time.
    let deleted_since = parameter("aid_customers_tokens_events_get", "deleted_since");
    assert!(!marked(&deleted_since));
    assert_eq!(deleted_since["schema"]["format"], "date-time");
    // Header parameters: Dintero names none (Idempotency-Key is ours).
    for (_, _, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = deref(&doc, parameter);
            if parameter["in"] == "header" {
                assert!(marked(parameter), "{}: header {}", operation["operationId"], parameter["name"]);
            }
        }
    }

    // Response headers: only `total-count` and the 429's Retry-After are Dintero's.
    let mut checked = 0;
    for (_, _, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = deref(&doc, response);
            for (name, header) in response["headers"].as_object().into_iter().flatten() {
                let dintero = name == "total-count" || (status == "429" && name == "Retry-After");
                assert_eq!(marked(header), !dintero, "{} {status}: header {name}", operation["operationId"]);
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
    for name in ["paging-token", "link", "request-id"] {
        let header = &by_id["card_tokens_get"]["responses"]["200"]["headers"][name];
        assert!(marked(header), "{name}");
    }
    assert!(marked(&by_id["aid_customers_post"]["responses"]["200"]["headers"]["idempotent-replayed"]));

    // aid_customers_post 400 "duplicate field detected" and aid_customers_cid_tokens_post (201,
    // 400, 401, 403, 404, 500): a duplicate is 400; 409 is left only for an Idempotency-Key in
    // progress (tokenvault's header).
    for id in ["aid_customers_post", "aid_customers_cid_tokens_post"] {
        let conflict = deref(&doc, &by_id[id]["responses"]["409"]);
        assert!(conflict["description"].as_str().unwrap().contains("Idempotency-Key"), "{id}");
        let description = by_id[id]["description"].as_str().unwrap();
        assert!(description.contains("400") && description.contains("DUPLICATE_"), "{id}: {description}");
    }
    // Schemas and fields of tokenvault's own (S-HOOKS `Hook` has no `account_id`; its
    // `config.secret` is a `Secret` object): marked; Dintero's schemas are not.
    for pointer in [
        "/components/schemas/CardTokenCreate",
        "/components/schemas/CardTokenStatusUpdate",
        "/components/schemas/SandboxReset",
        "/components/schemas/Health",
        "/components/schemas/Jwks",
        "/components/schemas/HookSubscription/properties/account_id",
        "/components/schemas/HookSubscriptionCreated/properties/account_id",
        "/components/schemas/HookSubscriptionCreated/properties/config/properties/secret",
        "/components/schemas/HookSubscriptionCreate/properties/config/properties/secret",
        "/components/schemas/HookDeliveryDetail/properties/event",
        "/components/schemas/HookDeliveryDetail/properties/state",
        "/components/schemas/HookDeliveryDetail/properties/next_attempt_at",
        "/components/schemas/HookDeliveryDetail/properties/attempts",
    ] {
        let schema = doc.pointer(pointer).unwrap_or_else(|| panic!("{pointer} not in the document"));
        assert!(marked(schema), "{pointer}");
    }
    for name in ["CustomerToken", "CardToken", "TokenDetail", "TokenEvent", "Error", "CustomerResponse", "HookDelivery"]
    {
        assert!(!marked(&doc["components"]["schemas"][name]), "{name}");
    }
    // CustomerResponse: `{type (required …)} & {customer_id (required)}` (S-CUST definitions).
    let required = doc["components"]["schemas"]["CustomerResponse"]["required"].as_array().unwrap();
    for field in ["customer_id", "type"] {
        assert!(required.contains(&json!(field)), "CustomerResponse does not require {field}");
    }
    // card_tokens_get / card_tokens_token_id_get / card_tokens_token_id_delete: "scopes: - admin:checkout".
    for id in [
        "card_tokens_get",
        "card_tokens_token_id_get",
        "card_tokens_token_id_delete",
        "aid_payments_card_tokens_get",
        "aid_payments_card_tokens_token_id_get",
    ] {
        assert_eq!(scopes_of(&by_id[id]), Some(vec!["admin:checkout".to_owned()]), "{id}");
    }
    app.server.shutdown().await;
}
