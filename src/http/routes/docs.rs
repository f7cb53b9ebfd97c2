//! The API's own description: the OpenAPI document and the reference page rendered from it.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::response::JSON_CONTENT_TYPE;

/// Built once, on first request, from the same routes the server serves.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| match crate::http::openapi::to_marked_json(&crate::http::openapi()) {
        Ok(json) => json,
        Err(error) => {
            tracing::error!(%error, "serialising the OpenAPI document failed");
            "{}".to_owned()
        }
    });

/// The reference page: one self-contained file (no external assets), rendering `/openapi.json`.
const DOCS_PAGE: &str = include_str!("../docs.html");

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_get",
    tag = "server",
    summary = "OpenAPI document",
    description = "This document: OpenAPI 3.1, generated from the server's code.",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json; charset=utf-8"),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn openapi_json() -> Response {
    with_content_type(DOCUMENT.as_str(), JSON_CONTENT_TYPE)
}

#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs_get",
    tag = "server",
    summary = "API reference",
    description = "A reference page rendered in the browser from `/openapi.json`; works offline.",
    responses(
        (status = 200, description = "The reference page", body = String, content_type = "text/html; charset=utf-8"),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn docs() -> Response {
    with_content_type(DOCS_PAGE, "text/html; charset=utf-8")
}

fn with_content_type(body: &'static str, content_type: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}
