//! The OpenAPI 3.1 document, generated from the code: each handler's `#[utoipa::path]` gives its
//! operation, [`super::api_routes`] registers the handlers (and so the paths) with utoipa-axum's
//! `routes!`, and this module holds what the handlers do not declare themselves: the path and
//! query parameters, the request bodies (handlers read raw JSON objects so that every field error
//! is reported, so the bodies are described here), the error responses, the security schemes,
//! and [`finish`], which adds what every operation shares because a layer adds it to every
//! response (`request-id`, 503, …).

use axum::http::Method;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa::ToSchema;

use super::idempotency;
use super::response::JSON_CONTENT_TYPE;
use crate::domain::card_token::{CardBrand, CardTokenLink, CardTokenStatus, DeleteRequestor};
use crate::domain::{webhook, AccountId, FieldError};

/// The extension that marks what tokenvault adds to Dintero's API.
pub const EXTENSION: &str = "x-tokenvault-extension";
/// The security scheme of every API operation (`Authorization: Bearer <JWT>`).
pub const BEARER: &str = "bearerAuth";
/// The security scheme of the token endpoint (`Authorization: Basic client_id:client_secret`).
pub const CLIENT_AUTH: &str = "clientAuth";

const DESCRIPTION: &str = "\
tokenvault is a self-hostable server that speaks Dintero's customer-token and card-token APIs. \
One listener serves the paths of both Dintero hosts: `/v1/accounts/{aid}/…` (api.dintero.com) \
and `/v1/card-tokens…` (checkout.dintero.com).

**Authentication.** Exchange a client id and secret for an access token with \
`POST /v1/accounts/{oid}/auth/token` (HTTP Basic), then send `Authorization: Bearer \
{access_token}`. Each operation lists the scopes that grant it; any one of them is enough.

**Errors** are `{\"error\": {\"code\", \"message\", \"errors\": [{\"field\", \"message\"}]}}` with \
`content-type: application/json; charset=utf-8`. A method a path does not serve is 405, an \
unknown path 404 (`resource not found`).

**Lists** are bare JSON arrays, oldest first. When more items follow, the response carries \
`paging-token` (the id of the last item) and `link: <…>; rel=\"next\"`; pass the token back as \
`starting_after`. `total=true` adds `total-count`.

**Idempotency.** Every POST and DELETE but the token endpoint takes an optional \
`Idempotency-Key` header (1 to 255 printable ASCII characters), as Stripe's API does: a retry with \
the same key and the same request (method, path, query and body bytes) within 24 hours gets the \
first response again, byte for byte, with `idempotent-replayed: true`, and nothing runs twice. \
The same key with another request is 422; while the first request still runs, a retry is 409 with \
`Retry-After`. Keys belong to the calling client. 5xx and 429 responses are not kept.

**Faults on demand** (test accounts only): rules added with `POST /v1/accounts/{aid}/sandbox/faults`, \
or the request header `tokenvault-fault` (`429`, `500`, `502`, `503`, `504`, `delay=<ms>`, `drop`) on one \
request, make requests fail on purpose, with the response header `tokenvault-fault` naming the rule (or \
`header`). Production accounts ignore the header.

Operations marked `x-tokenvault-extension: true` are tokenvault's own and not part of Dintero's API.";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tokenvault",
        description = DESCRIPTION,
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    tags(
        (name = "authenticate", description = "Access tokens for API clients (OAuth2 client credentials)."),
        (name = "customers", description = "Customers: the owners of customer tokens."),
        (name = "customer tokens", description = "Tokens (type/value pairs) attached to a customer."),
        (name = "token events", description = "What is known about a token type/value, with or without a customer."),
        (name = "card tokens", description = "Stored card tokens, on the checkout host's paths and the account-scoped aliases."),
        (name = "sessions", description = "Payment-token sessions: a test card page creates card tokens as Dintero's checkout does."),
        (name = "transactions", description = "The transactions approved payment-token sessions create (tokenvault processes no payments)."),
        (name = "hooks", description = "Webhook subscriptions for card-token events."),
        (name = "sandbox", description = "Conveniences for test accounts (tokenvault extension)."),
        (name = "server", description = "The server itself: health, signing keys, this document and its reference page."),
    ),
    components(
        schemas(ErrorBody, ErrorDetail, FieldError, AccountId),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            NoCustomerMatch,
            DisabledByCustomerSettings,
            Conflict,
            PayloadTooLarge,
            RequestTimeout,
            UnsupportedMediaType,
            TooManyRequests,
            UnprocessableEntity,
            InternalServerError,
            NotImplemented,
            ServiceUnavailable
        ),
    )
)]
pub struct ApiDoc;

/// Completes a document assembled from the routes: security schemes, and what every operation
/// shares because a layer, not the handler, produces it.
pub fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.bearer_format = Some("JWT".to_owned());
    bearer.description = Some(
        "An access token from `POST /v1/accounts/{oid}/auth/token`: `Authorization: Bearer {access_token}`. \
         Each operation lists the scopes that grant it; any one of them is enough."
            .to_owned(),
    );
    components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
    let mut basic = Http::new(HttpAuthScheme::Basic);
    basic.description =
        Some("The API client's credentials: `Authorization: Basic base64(client_id:client_secret)`.".to_owned());
    components.add_security_scheme(CLIENT_AUTH, SecurityScheme::Http(basic));

    // Unknown fields are refused, not dropped (a migration must not lose data unnoticed).
    if let Some(RefOr::T(Schema::Object(create))) = components.schemas.get_mut("CardTokenCreate") {
        create.additional_properties = Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
    }

    // Customers keep every field a client sends.
    for open in ["CustomerCreate", "CustomerResponse", "CustomerUpdate", "CustomersSettings"] {
        if let Some(RefOr::T(Schema::Object(customer))) = components.schemas.get_mut(open) {
            customer.additional_properties =
                Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)));
        }
    }

    for (name, response) in components.responses.iter_mut() {
        if let RefOr::T(response) = response {
            add_request_id(response);
            match name.as_str() {
                "TooManyRequests" => add_header(response, "Retry-After", integer(), RETRY_AFTER_429),
                "ServiceUnavailable" => add_header(response, "Retry-After", integer(), RETRY_AFTER_503),
                "Unauthorized" => add_header(response, "WWW-Authenticate", string(), "`Bearer`."),
                "Conflict" => add_header(response, "Retry-After", integer(), RETRY_AFTER_409),
                _ => {}
            }
        }
    }

    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in [(Method::POST, &mut item.post), (Method::DELETE, &mut item.delete)] {
            if let Some(operation) = operation.as_mut().filter(|_| idempotency::applies(&method, path)) {
                add_idempotency(operation);
            }
        }
        for operation in operations(item) {
            let bearer = operation
                .security
                .as_ref()
                .is_some_and(|security| serde_json::to_value(security).is_ok_and(|v| v.to_string().contains(BEARER)));
            if operation.security.is_none() {
                // Public: an explicit empty list, so no global requirement could ever apply.
                operation.security = Some(Vec::new());
            }
            // An optional body (`Option<T>`) may be left out, but is never `null`.
            if let Some(body) = operation.request_body.as_mut() {
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let mut variants = one_of.items.iter().filter(|v| !is_null(v));
                        if let (Some(only), None) = (variants.next(), variants.next()) {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
            let paged = operation.parameters.iter().flatten().any(|parameter| parameter.name == "limit");
            let responses = &mut operation.responses.responses;
            if bearer {
                // The optional per-client call limit is checked with the access token.
                responses.entry("429".to_owned()).or_insert_with(|| component_ref("TooManyRequests"));
            }
            if operation.request_body.is_some() {
                // The body-read deadline wraps every route that reads a body.
                responses.entry("408".to_owned()).or_insert_with(|| component_ref("RequestTimeout"));
            }
            responses.entry("500".to_owned()).or_insert_with(|| component_ref("InternalServerError"));
            // Timeouts and load shedding wrap every route.
            responses.entry("503".to_owned()).or_insert_with(|| component_ref("ServiceUnavailable"));
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response {
                    add_request_id(response);
                    if paged && status == "200" {
                        add_paging_headers(response);
                    }
                }
            }
        }
    }
}

/// Query parameters that tokenvault takes on a Dintero operation whose spec does not name them
/// (by Dintero's operationId).
const EXTENSION_QUERY_PARAMETERS: &[(&str, &str)] = &[
    ("aid_source_hooks_hid_deliveries_get", "limit"),
    ("aid_source_hooks_hid_deliveries_get", "starting_after"),
    ("aid_source_hooks_hid_deliveries_get", "total"),
    ("card_tokens_get", "total"),
    ("aid_payments_card_tokens_get", "total"),
    ("aid_customers_tokens_events_get", "total"),
];

/// Schemas and fields of tokenvault's own inside the document (JSON pointers): the bodies of the
/// extension operations, and fields Dintero's schemas do not have (its `Hook` has no
/// `account_id`, and its `config.secret` is an object `{type, value}`, not a string).
const EXTENSION_SCHEMAS: &[&str] = &[
    "/components/schemas/CardTokenCreate",
    "/components/schemas/CardTokenStatusUpdate",
    "/components/schemas/SandboxReset",
    "/components/schemas/SandboxResetCounts",
    "/components/schemas/FaultRuleCreate",
    "/components/schemas/FaultSpec",
    "/components/schemas/FaultFrequencySpec",
    "/components/schemas/FaultRule",
    "/components/schemas/FaultRulesCleared",
    "/components/schemas/SandboxClock",
    "/components/schemas/SandboxClockChange",
    "/components/schemas/WebhookTrigger",
    "/components/schemas/WebhookTriggered",
    "/components/schemas/JournalEntry",
    "/components/schemas/JournalRequest",
    "/components/schemas/JournalResponse",
    "/components/schemas/JournalCleared",
    "/components/schemas/Health",
    "/components/schemas/Jwks",
    "/components/schemas/Jwk",
    "/components/schemas/HookSubscription/properties/account_id",
    "/components/schemas/HookSubscriptionCreated/properties/account_id",
    "/components/schemas/HookSubscriptionCreated/properties/config/properties/secret",
    "/components/schemas/HookSubscriptionCreate/properties/config/properties/secret",
    // Dintero's operations tokenvault answers with 501 (its spec lists no 501).
    "/components/responses/NotImplemented",
    "/components/schemas/HookDeliveryDetail/properties/event",
    "/components/schemas/HookDeliveryDetail/properties/state",
    "/components/schemas/HookDeliveryDetail/properties/next_attempt_at",
    "/components/schemas/HookDeliveryDetail/properties/attempts",
];

/// The serialised document with `x-tokenvault-extension: true` on what Dintero's spec lacks
/// besides whole operations (marked by their handlers): the query parameters above, every
/// header parameter (`Idempotency-Key`), and every response header but `total-count` (named by
/// Dintero's `total` parameter) and the 429's `Retry-After` (Dintero's TooManyRequests). utoipa's
/// header objects carry no extensions, so this works on the JSON.
pub fn to_marked_json(doc: &OpenApi) -> serde_json::Result<String> {
    let mut value = serde_json::to_value(doc)?;
    mark_extensions(&mut value);
    serde_json::to_string(&value)
}

fn mark(object: &mut serde_json::Value) {
    if let Some(object) = object.as_object_mut() {
        object.insert(EXTENSION.to_owned(), serde_json::Value::Bool(true));
    }
}

fn mark_headers(response: &mut serde_json::Value, dintero_retry_after: bool) {
    if let Some(headers) = response.get_mut("headers").and_then(serde_json::Value::as_object_mut) {
        for (name, header) in headers.iter_mut() {
            let dintero = name == "total-count" || (dintero_retry_after && name == "Retry-After");
            if !dintero {
                mark(header);
            }
        }
    }
}

fn mark_extensions(doc: &mut serde_json::Value) {
    for pointer in EXTENSION_SCHEMAS {
        if let Some(schema) = doc.pointer_mut(pointer) {
            mark(schema);
        }
    }
    if let Some(responses) = doc.pointer_mut("/components/responses").and_then(serde_json::Value::as_object_mut) {
        for (name, response) in responses.iter_mut() {
            mark_headers(response, name == "TooManyRequests");
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let id = operation.get("operationId").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            if let Some(parameters) = operation.get_mut("parameters").and_then(serde_json::Value::as_array_mut) {
                for parameter in parameters {
                    let name = parameter.get("name").and_then(serde_json::Value::as_str).unwrap_or_default();
                    let location = parameter.get("in").and_then(serde_json::Value::as_str).unwrap_or_default();
                    let ours = location == "header"
                        || EXTENSION_QUERY_PARAMETERS.iter().any(|(op, param)| *op == id && *param == name);
                    if ours {
                        mark(parameter);
                    }
                }
            }
            if let Some(responses) = operation.get_mut("responses").and_then(serde_json::Value::as_object_mut) {
                for response in responses.values_mut() {
                    mark_headers(response, false);
                }
            }
        }
    }
}

/// The `Idempotency-Key` header, its 422 and 409, and the replay marker on the operation's own
/// responses ([`super::idempotency`]).
fn add_idempotency(operation: &mut Operation) {
    let schema = string().min_length(Some(1)).max_length(Some(idempotency::MAX_KEY_LENGTH)).pattern(Some("^[ -~]+$"));
    let parameter = ParameterBuilder::new()
        .name(idempotency::HEADER)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: a retry with the same key and the same request (method, path, query and body \
             bytes) within 24 hours gets the first response again, byte for byte, with `idempotent-replayed: \
             true`, and nothing runs twice. The same key with another request is 422; while the first request \
             runs, a retry is 409 with `Retry-After`. Keys belong to the calling client; 5xx and 429 responses \
             are not kept.",
        ))
        .schema(Some(schema))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(parameter);
    let responses = &mut operation.responses.responses;
    responses.entry("409".to_owned()).or_insert_with(|| component_ref("Conflict"));
    responses.entry("422".to_owned()).or_insert_with(|| component_ref("UnprocessableEntity"));
    // The body is read (to recognise a retry) before the handler runs, also where it ignores it.
    responses.entry("413".to_owned()).or_insert_with(|| component_ref("PayloadTooLarge"));
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            add_header(
                response,
                idempotency::REPLAYED.as_str(),
                string().enum_values(Some(["true"])),
                "Present when the response replays the first response to the request's `Idempotency-Key`.",
            );
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object)) if object.schema_type == Type::Null.into())
}

const RETRY_AFTER_409: &str = "Only when a request with the same `Idempotency-Key` is in progress: `1`.";
const RETRY_AFTER_429: &str = "Seconds to wait before the next attempt.";
const RETRY_AFTER_503: &str =
    "Seconds to wait before retrying: `1`, or `30` when the database is out of disk space or memory.";

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head]
        .into_iter()
        .filter_map(Option::as_mut)
}

fn component_ref(name: &str) -> RefOr<Response> {
    RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))
}

fn add_header(response: &mut Response, name: &str, schema: ObjectBuilder, description: &str) {
    response
        .headers
        .entry(name.to_owned())
        .or_insert_with(|| HeaderBuilder::new().schema(schema).description(Some(description)).build());
}

fn add_request_id(response: &mut Response) {
    add_header(response, "request-id", string(), "The request's id: the one the client sent, or a new UUID.");
}

/// Every list that takes `limit` pages the same way ([`super::response::list`]).
fn add_paging_headers(response: &mut Response) {
    add_header(
        response,
        "paging-token",
        string(),
        "Present when more items follow: the `id` of the last item, to pass as `starting_after`.",
    );
    add_header(
        response,
        "link",
        string(),
        "Present when more items follow: `<{path}?{query with starting_after}>; rel=\"next\"`.",
    );
    add_header(response, "total-count", integer(), "Present when `total=true`: how many items match the filters.");
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Dintero's error body.
#[derive(ToSchema)]
#[schema(as = Error, example = json!({"error": {"code": "NOT FOUND", "message": "customer not found", "errors": []}}))]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The status's reason phrase in upper case, e.g. `BAD REQUEST`, `NOT FOUND`; for a
    /// duplicate of a unique field (400), `DUPLICATE_` and the field: `DUPLICATE_CUSTOMER_ID`,
    /// `DUPLICATE_EMAIL`, `DUPLICATE_PHONE_NUMBER`, `DUPLICATE_TOKEN_ID`, `DUPLICATE_TOKEN`.
    #[schema(example = "BAD REQUEST")]
    code: String,
    /// A human-readable description; for validation errors, the first field's error.
    #[schema(example = "limit: must be an integer between 1 and 100")]
    message: String,
    /// Each rejected field (validation errors and duplicates; otherwise empty).
    errors: Vec<FieldError>,
}

macro_rules! error_responses {
    ($($name:ident => $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (
                    stringify!($name),
                    ResponseBuilder::new()
                        .description($description)
                        .content(JSON_CONTENT_TYPE, Content::new(Some(RefOr::<Schema>::Ref(
                            utoipa::openapi::Ref::from_schema_name("Error"),
                        ))))
                        .build()
                        .into(),
                )
            }
        }
    )*};
}

error_responses! {
    BadRequest => "Bad request: invalid input, or a duplicate of a unique field (`code` `DUPLICATE_…`). `errors` lists each rejected field.";
    Unauthorized => "Missing, malformed, expired or wrongly signed credentials.";
    Forbidden => "Valid credentials without one of the operation's scopes, or for another account.";
    NotFound => "The resource does not exist (in the caller's account).";
    MethodNotAllowed => "The path does not serve this method.";
    NoCustomerMatch => "No user match given query parameters (a HEAD answer carries no body).";
    DisabledByCustomerSettings => "Method not allowed by customer settings: `PUT …/customers/settings` with `users.head.enabled: true` enables it (a HEAD answer carries no body).";
    Conflict => "The request conflicts with the stored state, or a request with the same `Idempotency-Key` is still in progress (then with `Retry-After`).";
    PayloadTooLarge => "The request body is larger than the server accepts.";
    RequestTimeout => "The request body did not arrive within the server's body-read timeout (tokenvault extension: a bound against clients that trickle bodies).";
    UnsupportedMediaType => "A request body that is not `application/json`.";
    TooManyRequests => "Too many requests; retry after `Retry-After` seconds.";
    UnprocessableEntity => "The `Idempotency-Key` was already used with a different request.";
    InternalServerError => "An unexpected server error (never caused by the request).";
    NotImplemented => "Dintero's operation, not implemented by tokenvault (it processes no payments): `code` `NOT IMPLEMENTED`, and a message saying what is missing (tokenvault extension).";
    ServiceUnavailable => "The server is overloaded, the request took too long, or the database is unavailable or out of disk space or memory (a write refused for lack of room changed nothing).";
}

// ---------------------------------------------------------------------------------------------
// Parameters. The handlers read them from the raw path and query (`extract::Query`), so these
// structs only describe them.

/// `aid`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AccountPath {
    /// An id that uniquely identifies the account.
    #[param(pattern = r"^[PT]{1}\d{8}$", min_length = 9, max_length = 9, example = "T12345678")]
    aid: String,
}

/// `oid` of the token endpoint.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OwnerPath {
    /// The owner id: the account id (`P`/`T` and 8 digits) or a partner id (`P`/`T` and 3 digits).
    #[param(pattern = r"^[PT]{1}(?=(?:.{3}|.{8})$)[0-9]*$", example = "T12345678")]
    oid: String,
}

/// `customer_id`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CustomerPath {
    /// The customer id you have defined for the customer. (must not have trailing or leading spaces)
    #[param(min_length = 1, max_length = 255)]
    customer_id: String,
}

/// `tid` of a customer token.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CustomerTokenPath {
    /// The token id you have defined for the token. (must not have trailing or leading spaces)
    #[param(min_length = 1, max_length = 255)]
    tid: String,
}

/// `token_id` of a card token.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CardTokenPath {
    /// The payment_token_id or recurrence_token_id for the token (the card token's `id`).
    #[param(min_length = 1, max_length = 255)]
    token_id: String,
}

/// `hid`, as Dintero names the subscription in its paths.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SubscriptionPath {
    /// subscription id (the subscription's `id`).
    #[param(format = Uuid)]
    hid: String,
}

/// `fault_id`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct FaultPath {
    /// The fault rule's `id`.
    #[param(format = Uuid)]
    fault_id: String,
}

/// `delivery_id`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct DeliveryPath {
    /// delivery id (a delivery's `id` from the deliveries list).
    delivery_id: String,
}

/// `limit`, `starting_after` and `total`, as every paged list takes them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// A limit on the number of objects to be returned. Limit can range between 1 and 100 items,
    /// and the default is 10 items.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<u32>,
    /// The cursor for the next page: the `paging-token` of the previous response (the `id` of its
    /// last item). An unknown cursor is 400.
    #[param(min_length = 1)]
    starting_after: Option<String>,
    /// include total-count header in the response
    #[param(default = false)]
    total: Option<bool>,
}

/// Filters of the customer list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CustomerListQuery {
    /// Find the customer that owns a live token of this type (with `token_value`).
    #[param(min_length = 1)]
    token_type: Option<String>,
    /// Find the customer that owns a live token with this value (with `token_type`).
    #[param(min_length = 1)]
    token_value: Option<String>,
    /// Customers whose e-mail starts with this (case-insensitive).
    #[param(min_length = 1)]
    email: Option<String>,
    /// Customers whose phone number starts with this (encode `+` as `%2B`).
    #[param(min_length = 1)]
    phone_number: Option<String>,
    /// The customer type; `contact` is left out unless asked for, `any` gives every type.
    #[param(rename = "type", inline)]
    customer_type: Option<CustomerTypeFilter>,
    /// Include deleted customers.
    #[param(default = false)]
    include_deleted: Option<bool>,
    /// lookup customer where search term match name, phone number, customer_id or email: a
    /// prefix of the customer_id or phone number (as given), of the e-mail, or of the name or any
    /// word in it (`first_name last_name`; e-mail and name case-insensitively).
    #[param(min_length = 1)]
    search: Option<String>,
    /// lookup customers by tag id. tokenvault keeps no tags (Dintero's tag operations are not
    /// implemented), so no customer matches.
    #[param(min_length = 1)]
    tag_id: Option<String>,
    /// include customers that has all the attributes (keys of the customer's `attributes`).
    #[param(rename = "attributes_keys[]", style = Form, explode)]
    attributes_keys: Option<Vec<String>>,
    /// Combine with `attributes_keys` to include customers with match on attribute values: the
    /// n-th value belongs to the n-th key (a string equal to it, a number or boolean whose JSON
    /// text equals it, or an array with such an element). More values than keys is 400.
    #[param(rename = "attributes_values[]", style = Form, explode)]
    attributes_values: Option<Vec<String>>,
    /// lookup customers that has been added or modified since an ISO timestamp (RFC 3339), listed
    /// in order of `updated_at`. NOTE: this parameter can't be combined with `starting_after`
    /// parameter (400). Retrieve next page by updating since_datetime to the latest updated_at
    /// value found in the result.
    #[param(format = DateTime)]
    since_datetime: Option<String>,
}

/// Parameters of `HEAD …/customers/users`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CustomerHeadQuery {
    /// lookup customer by email (a prefix, case-insensitive)
    #[param(min_length = 1)]
    email: Option<String>,
    /// lookup customer by phone_number (a prefix; encode `+` as `%2B`)
    #[param(min_length = 1)]
    phone_number: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CustomerTypeFilter {
    Customer,
    Company,
    Contact,
    Employee,
    Other,
    Any,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CustomerType {
    Customer,
    Company,
    Contact,
    Employee,
    Other,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CustomerDeleteQuery {
    /// Also delete the customer's tokens.
    #[param(default = false)]
    delete_tokens: Option<bool>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CustomerTokenCreateQuery {
    /// delete all token events recorded on token type/value before creating new customer token
    #[param(default = false)]
    delete_token_events: Option<bool>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CustomerTokenListQuery {
    /// filter tokens on type
    #[param(rename = "type", min_length = 1)]
    token_type: Option<String>,
    /// include deleted tokens in the response.
    #[param(default = true)]
    include_deleted: Option<bool>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TokenEventsQuery {
    /// Return only events added or updated at or after this time (RFC 3339). Cannot be combined
    /// with `starting_after`.
    #[param(format = DateTime)]
    since_datetime: Option<String>,
    /// return only token events that has been deleted: the token type/values whose events were
    /// deleted (`DELETE …/customers/tokens/events`, or `delete_token_events=true` on a token
    /// create) at or after this time (RFC 3339), in the order of their latest deletion. Items
    /// without events since have the status `DELETED`. Cannot be combined with `since_datetime`.
    #[param(format = DateTime)]
    deleted_since: Option<String>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CardTokenListQuery {
    /// Filter by customer_id
    #[param(min_length = 1)]
    customer_id: Option<String>,
    /// Filter by relationship_id
    #[param(min_length = 1)]
    relationship_id: Option<String>,
    /// Filter by status: repeat the key (`status=ACTIVE&status=SUSPENDED`); `status[]=…` and
    /// comma-separated values are accepted too.
    #[param(style = Form, explode, inline)]
    status: Option<Vec<CardTokenStatus>>,
    /// Include deleted card tokens in the response
    #[param(default = false)]
    include_deleted: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Request bodies. Handlers read them as JSON objects and validate each field themselves.

/// A customer. Fields beyond those listed are stored and returned exactly as sent; `id`,
/// `created_*`, `updated_at`, `deleted_*`, `password` and `pin` are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CustomerCreate {
    /// The customer id you define (generated, a UUID, when left out). Must not have leading or
    /// trailing spaces.
    #[schema(min_length = 1, max_length = 255)]
    customer_id: Option<String>,
    #[schema(rename = "type", inline, default = "customer")]
    customer_type: Option<CustomerType>,
    /// Unique per account and customer type, compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// E.164; unique per account.
    #[schema(pattern = r"^\+?[1-9]\d{1,14}$")]
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Takes precedence over token events in a token's aggregated status.
    status: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// A customer update (Dintero's `BasicUser`): only the fields sent change; fields beyond those
/// listed are stored and returned as sent, `null` removes a field. `customer_id` may only repeat
/// the path's; `id`, `created_*`, `updated_at`, `deleted_*`, `password` and `pin` are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CustomerUpdate {
    #[schema(rename = "type", inline)]
    customer_type: Option<CustomerType>,
    /// Unique per account and customer type, compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// E.164; unique per account.
    #[schema(pattern = r"^\+?[1-9]\d{1,14}$")]
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Status of the customer: the status of its tokens in `POST …/customers/tokens/events`.
    status: Option<String>,
    /// Custom attributes (`attributes_keys[]` in the list looks in them).
    #[schema(value_type = Option<Object>)]
    attributes: Option<serde_json::Value>,
    /// Merged key by key: a key set to `null` is removed; `null` clears it.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// The body of `change_customer_id`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChangeCustomerId {
    /// New customer_id (must not have trailing or leading spaces). Required by tokenvault (the
    /// spec leaves it optional; without it there is nothing to change to).
    #[schema(min_length = 1, max_length = 255)]
    customer_id: String,
}

/// Customer settings for the account (Dintero's `CustomersSettings`). Fields beyond those listed
/// are kept and returned as given.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CustomersSettings {
    /// customers user configurations; `head.enabled` (default false) enables `HEAD
    /// …/customers/users`. Other fields (`phone_number_validation`, `customer_id_format`, `mfa`,
    /// `verifications`) are kept but change nothing in tokenvault.
    #[schema(value_type = Option<Object>)]
    users: Option<serde_json::Value>,
    /// Automatically generate tokens for these properties on the customer:
    /// `{email?: AutoTokenType[], phone_number?: AutoTokenType[]}`, each `{type: SHA256 |
    /// HMAC-SHA256, secret}` (`secret` required for HMAC-SHA256).
    #[schema(value_type = Option<Object>)]
    auto_tokens: Option<serde_json::Value>,
    /// tokens configuration: `event_expiry: [{status, time_to_live}]` (seconds).
    #[schema(value_type = Option<Object>)]
    tokens: Option<serde_json::Value>,
    /// user attributes (kept as given).
    #[schema(value_type = Option<Vec<Object>>)]
    attributes: Option<serde_json::Value>,
}

/// A stored customer (Dintero's `CustomerResponse`): `id` and `customer_id`, then every other
/// field as it was sent, then the read-only fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CustomerResponse {
    /// An UUID that uniquely identifies the resource
    id: uuid::Uuid,
    customer_id: String,
    /// Required, as in Dintero's CustomerResponse: a deleted customer keeps it besides its ids and
    /// the `created_*` and `deleted_*` fields.
    #[schema(rename = "type", inline)]
    customer_type: CustomerType,
    email: Option<String>,
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    status: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    created_at: String,
    created_by: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(format = DateTime)]
    deleted_at: Option<String>,
    deleted_by: Option<String>,
}

/// customer token to add
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CustomerTokenCreate {
    /// identifies how or who is resposible for the token value
    #[schema(rename = "type", min_length = 1, example = "sha1:email")]
    token_type: String,
    #[schema(min_length = 1, example = "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92")]
    value: String,
    /// The token id you have defined for the token. (must not have trailing or leading spaces).
    /// An auto-generated token_id will be created if no token_id is provided.
    #[schema(min_length = 1, max_length = 255)]
    token_id: Option<String>,
    /// Additional metadata about the token or the entity the token was created from
    #[schema(value_type = Option<Object>, example = json!({"exp_month": 10, "exp_year": 20, "mask_pan": "**** **** **** 3477"}))]
    metadata: Option<serde_json::Value>,
}

/// Find a token type/value and, when `event` is given, record it first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenEventsRequest {
    token: crate::domain::token_event::TokenTypeValue,
    #[schema(inline)]
    event: Option<TokenEventInput>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenEventInput {
    /// Context about the event
    #[schema(min_length = 1, example = "customer declined signup in store")]
    event: String,
    /// The state to set on the token type/value
    #[schema(min_length = 1, example = "OPT_OUT")]
    status: Option<String>,
    #[schema(value_type = Option<Object>, example = json!({"store_id": "SID1234"}))]
    metadata: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Clear a token type/value's events; `event`, when given, is recorded as the reason (a
/// `DELETED` event).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenEventsDeleteRequest {
    token: crate::domain::token_event::TokenTypeValue,
    #[schema(inline)]
    event: Option<TokenDeleteEventInput>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenDeleteEventInput {
    #[schema(min_length = 1, example = "customer registered in webshop")]
    event: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// A card token to store (tokenvault extension). Unknown and read-only fields are refused. New
/// tokens are `ACTIVE` and belong to the caller's account.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CardTokenCreate {
    /// The token's id (generated, a UUID, when left out).
    #[schema(min_length = 1, max_length = 255)]
    id: Option<String>,
    #[schema(rename = "type", schema_with = payment_token_type)]
    token_type: Option<String>,
    /// Only `ACTIVE` may be given.
    #[schema(schema_with = active_status)]
    status: Option<String>,
    card_brand: CardBrand,
    /// The caller's account, if given.
    account_id: Option<AccountId>,
    #[schema(min_length = 1, max_length = 255, example = "dintero_psp.creditcard")]
    payment_product_type: String,
    /// The PSP's token; stored encrypted.
    #[schema(min_length = 1, max_length = 1024)]
    token: Option<String>,
    #[schema(min_length = 12, max_length = 19, example = "476173******0416")]
    masked_pan: Option<String>,
    #[schema(pattern = r"^\d{2}/\d{4}$", example = "09/2030")]
    pan_expiry_date: Option<String>,
    #[schema(pattern = r"^\d{2}/\d{4}$", example = "09/2030")]
    token_expiry_date: Option<String>,
    #[schema(max_items = 20)]
    links: Option<Vec<CardTokenLink>>,
    #[schema(min_length = 1, max_length = 255)]
    customer_id: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    relationship_id: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    transaction_id: Option<String>,
    /// External references to migrated card tokens
    #[schema(max_items = 20)]
    external_token_references: Option<Vec<String>>,
}

fn payment_token_type() -> utoipa::openapi::schema::Object {
    string().enum_values(Some([crate::domain::card_token::PAYMENT_TOKEN_TYPE])).build()
}

fn active_status() -> utoipa::openapi::schema::Object {
    string().enum_values(Some([CardTokenStatus::Active.as_str()])).build()
}

/// The statuses `PUT …/status` accepts: every live state (`DELETED` only through DELETE).
fn settable_status() -> utoipa::openapi::schema::Object {
    let live = CardTokenStatus::ALL.into_iter().filter(|s| *s != CardTokenStatus::Deleted).map(CardTokenStatus::as_str);
    string().enum_values(Some(live)).build()
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CardTokenDeleteRequest {
    /// Short description of the reason for the token deletion.
    #[schema(max_length = 128, example = "Profile deleted")]
    reason: Option<String>,
    /// Entity initiating the token deletion.
    #[schema(inline, default = "MERCHANT", example = "MERCHANT")]
    requestor: Option<DeleteRequestor>,
}

/// A card token's new status (tokenvault extension).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CardTokenStatusUpdate {
    #[schema(schema_with = settable_status)]
    status: String,
}

/// A webhook subscription to create.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookSubscriptionCreate {
    #[schema(inline)]
    config: HookConfigInput,
    #[schema(schema_with = hook_events)]
    events: Vec<String>,
}

fn hook_events() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new().items(string().enum_values(Some(webhook::EVENTS))).min_items(Some(1)).build()
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookConfigInput {
    /// Where deliveries are POSTed (http or https).
    #[schema(max_length = 2048, example = "https://example.com/hooks/dintero")]
    url: String,
    #[schema(schema_with = json_content_type)]
    content_type: Option<String>,
    /// The key of each delivery's `event-signature` (HMAC-SHA1 of the body, hex); generated when
    /// left out. Shown only in the create response.
    #[schema(min_length = 8, max_length = 256)]
    secret: Option<String>,
}

fn json_content_type() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["application/json"])).build()
}

/// A created subscription: as stored, with `config.secret` shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookSubscriptionCreated {
    id: uuid::Uuid,
    account_id: AccountId,
    events: Vec<String>,
    #[schema(inline)]
    config: HookConfigWithSecret,
    active: bool,
    #[schema(format = DateTime)]
    created_at: String,
    created_by: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookConfigWithSecret {
    url: String,
    content_type: String,
    /// The signing secret (given or generated).
    secret: String,
}

// ---------------------------------------------------------------------------------------------
// Bodies that handlers build with `json!`.

/// Dintero's `HookDeliveryDetail`, with tokenvault's additions (`event`, `state`,
/// `next_attempt_at`, `attempts`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookDeliveryDetail {
    id: uuid::Uuid,
    /// The `event-delivery` GUID sent (a resend carries the original's).
    event_delivery: uuid::Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    /// HTTP status code of the latest attempt, when the receiver answered.
    #[schema(example = 200)]
    status: Option<u16>,
    /// The payload URL.
    url: String,
    #[schema(inline)]
    request: DeliveryRequest,
    /// The receiver's answer to the latest attempt, when it answered.
    #[schema(inline)]
    response: Option<DeliveryResponse>,
    /// The latest attempt, once there was one.
    #[schema(inline)]
    details: Option<DeliveryDetails>,
    /// The event name (the `event` header).
    event: String,
    /// `PENDING` (more attempts follow), `DELIVERED` or `FAILED` (given up).
    #[schema(schema_with = delivery_state)]
    state: String,
    /// When the next attempt is due, while `PENDING`.
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// Every attempt, oldest first.
    #[schema(inline)]
    attempts: Vec<DeliveryAttemptShown>,
}

fn delivery_state() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["PENDING", "DELIVERED", "FAILED"])).build()
}

/// `HookDeliveryDetail.request`: what was sent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeliveryRequest {
    /// The headers sent (`content-type`, `event`, `event-delivery`, `event-signature`,
    /// `user-agent`); absent until something was sent.
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// The JSON body sent.
    body: serde_json::Value,
}

/// `HookDeliveryDetail.response`: what the receiver answered.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeliveryResponse {
    headers: std::collections::BTreeMap<String, String>,
    /// The first 4 KiB of the receiver's body.
    body: String,
}

/// `HookDeliveryDetail.details`: the latest attempt.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeliveryDetails {
    #[schema(format = DateTime)]
    delivery_at: String,
    /// Milliseconds.
    #[schema(example = 848)]
    delivery_duration: i64,
    delivery_success: bool,
}

/// One entry of `HookDeliveryDetail.attempts` (tokenvault extension).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeliveryAttemptShown {
    #[schema(format = DateTime)]
    attempted_at: String,
    /// Milliseconds.
    duration: i64,
    /// The receiver's HTTP status, when it answered.
    status: Option<u16>,
    /// Why the attempt failed (at most 500 characters).
    error: Option<String>,
    success: bool,
}

/// Client token credential.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuthTokenRequest {
    #[schema(schema_with = client_credentials)]
    grant_type: String,
    /// The API the token is for: `<base URL>/v1/accounts/{aid}`, with any base URL; `aid` must be
    /// the path's `oid` and the client's account.
    #[schema(example = "https://api.dintero.com/v1/accounts/T12345678")]
    audience: String,
}

fn client_credentials() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["client_credentials"])).build()
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AccessToken {
    /// A JWT signed with EdDSA (keys at `/.well-known/jwks.json`).
    access_token: String,
    #[schema(schema_with = bearer_type)]
    token_type: String,
    /// The token's lifetime in seconds.
    #[schema(example = 86400)]
    expires_in: u64,
}

fn bearer_type() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["Bearer"])).build()
}

/// What a sandbox reset deleted.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SandboxReset {
    #[schema(example = "T12345678")]
    account_id: String,
    deleted: SandboxResetCounts,
}

/// Rows deleted per kind; the kinds of a part the caller does not administer (and so did not
/// reset) are left out.
#[derive(ToSchema)]
#[schema(
    description = "Rows deleted per kind. `customers`, `customer_tokens` and `token_events` are present when the caller holds `admin:customers`, `card_tokens` with `admin:checkout`, `hook_subscriptions` and `webhook_deliveries` (those still pending) with `admin:hooks`, `fault_rules` and `clocks` with `admin:customers` or `admin:checkout`; the others were not reset and are left out."
)]
#[allow(dead_code)]
pub struct SandboxResetCounts {
    #[schema(nullable = false)]
    customers: Option<u64>,
    #[schema(nullable = false)]
    customer_tokens: Option<u64>,
    #[schema(nullable = false)]
    token_events: Option<u64>,
    #[schema(nullable = false)]
    card_tokens: Option<u64>,
    #[schema(nullable = false)]
    hook_subscriptions: Option<u64>,
    #[schema(nullable = false)]
    webhook_deliveries: Option<u64>,
    #[schema(nullable = false)]
    fault_rules: Option<u64>,
    /// 1 when the account's clock had been set (it runs on real time again), else 0.
    #[schema(nullable = false, minimum = 0, maximum = 1)]
    clocks: Option<u64>,
}

/// A fault rule to add (`aid_sandbox_faults_post`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaultRuleCreate {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, or `*`; every method when left out.
    #[schema(nullable = false, example = "POST")]
    method: Option<String>,
    /// A request path pattern: `*` stands for any characters within one segment, a whole
    /// segment `**` for any number of segments.
    #[schema(max_length = 1024, pattern = "^/", example = "/v1/accounts/*/customers/users/*/tokens")]
    path: String,
    /// Only requests of this API client (the bearer token's client, or at the token endpoint the
    /// Basic user); every client when left out.
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    client_id: Option<String>,
    fault: FaultSpec,
    #[schema(nullable = false)]
    frequency: Option<FaultFrequencySpec>,
    /// When the rule stops applying: in the future, at most 30 days ahead; an hour from now when
    /// left out.
    #[schema(nullable = false, format = DateTime)]
    until: Option<String>,
}

/// What a faulted request gets: `{"type": "status", "status", "retry_after"?}`,
/// `{"type": "delay", "delay_ms"}` or `{"type": "drop"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaultSpec {
    #[schema(rename = "type", schema_with = fault_types)]
    kind: String,
    /// With `status`: 429, 500, 502, 503 or 504.
    #[schema(nullable = false, minimum = 429, maximum = 504, example = 503)]
    status: Option<u16>,
    /// With `status` 429 or 503: the `Retry-After` seconds (default 1).
    #[schema(nullable = false, minimum = 0, maximum = 86400)]
    retry_after: Option<u32>,
    /// With `delay`: milliseconds to wait before the request proceeds.
    #[schema(nullable = false, minimum = 1, maximum = 60000)]
    delay_ms: Option<u32>,
}

fn fault_types() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["status", "delay", "drop"])).build()
}

/// How often a matching request is faulted: `{"type": "always"}` (the default),
/// `{"type": "times", "times"}` (the next `times` matches; shown with `remaining`) or
/// `{"type": "probability", "probability", "seed"?}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaultFrequencySpec {
    #[schema(rename = "type", schema_with = frequency_types)]
    kind: String,
    /// With `times`: how many of the next matches are faulted.
    #[schema(nullable = false, minimum = 1, maximum = 1000000)]
    times: Option<u32>,
    /// With `times`, shown only: faults left.
    #[schema(nullable = false, minimum = 0, read_only)]
    remaining: Option<u64>,
    /// With `probability`: the chance that a match is faulted, above 0 and at most 1.
    #[schema(nullable = false, maximum = 1, exclusive_minimum = 0)]
    probability: Option<f64>,
    /// With `probability`: the seed of the draws; the same seed faults the same matches.
    #[schema(nullable = false, minimum = 0)]
    seed: Option<u64>,
}

fn frequency_types() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(["always", "times", "probability"])).build()
}

/// A fault rule, as shown.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaultRule {
    #[schema(format = Uuid)]
    id: String,
    #[schema(example = "T12345678")]
    account_id: String,
    /// The method matched; `null`: every method.
    method: Option<String>,
    path: String,
    /// The client matched; `null`: every client.
    client_id: Option<String>,
    fault: FaultSpec,
    frequency: FaultFrequencySpec,
    /// Matching requests seen so far, faulted or not.
    #[schema(minimum = 0)]
    matched: u64,
    #[schema(format = DateTime)]
    until: String,
    #[schema(format = DateTime)]
    created_at: String,
    created_by: String,
}

/// A card-token event to emit (`aid_sandbox_webhooks_trigger_post`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookTrigger {
    #[schema(schema_with = card_token_events)]
    event: String,
    /// The card token to announce, as it is stored; left out, a test card token is made for it.
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    token_id: Option<String>,
}

fn card_token_events() -> utoipa::openapi::schema::Object {
    string().enum_values(Some(webhook::EVENTS)).build()
}

/// What a trigger queued.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookTriggered {
    #[schema(example = "T12345678")]
    account_id: String,
    #[schema(schema_with = card_token_events)]
    event: String,
    token_id: String,
    /// Whether the card token was made for the trigger.
    created: bool,
    /// The subscriptions that get the event.
    #[schema(minimum = 0)]
    deliveries: u64,
}

/// What `aid_sandbox_faults_delete` removed.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaultRulesCleared {
    #[schema(example = "T12345678")]
    account_id: String,
    /// Rules removed that had not expired.
    #[schema(minimum = 0)]
    deleted: u64,
}

/// A test account's clock (`aid_sandbox_clock_get`, `_put`, `_delete`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SandboxClock {
    #[schema(example = "T12345678")]
    account_id: String,
    /// The account's "now": real time plus `offset_ms`.
    #[schema(format = DateTime, example = "2027-01-01T00:00:00.000Z")]
    time: String,
    /// Real time, when this answer was made.
    #[schema(format = DateTime, example = "2026-12-03T10:00:00.000Z")]
    real_time: String,
    /// The account's time minus real time, in milliseconds; 0 when it runs on real time.
    offset_ms: i64,
    /// When the clock was last set or advanced (real time); null when it runs on real time.
    #[schema(format = DateTime)]
    updated_at: Option<String>,
    /// The client that last set or advanced it; null when it runs on real time.
    updated_by: Option<String>,
}

/// `aid_sandbox_clock_put`'s body: exactly one of `time` and `advance_seconds`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SandboxClockChange {
    /// The moment the account's clock is to show now (earlier or later than its current time),
    /// from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z; it runs on from there at real speed.
    #[schema(nullable = false, format = DateTime, example = "2027-01-01T00:00:00Z")]
    time: Option<String>,
    /// Seconds to move the account's clock ahead of where it is.
    #[schema(nullable = false, minimum = 1, maximum = 3_155_760_000_i64, example = 86400)]
    advance_seconds: Option<i64>,
}

/// `POST /v1/admin/unseal`'s body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UnsealRequest {
    /// One share of the master key.
    #[schema(example = "tokenvault-share-v1:88dad7c8:2:01a1b2…:5d41402a")]
    share: String,
}

/// Where unsealing stands.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SealStatus {
    sealed: bool,
    /// Shares needed, known once the first is entered.
    threshold: Option<u8>,
    /// Shares entered so far.
    progress: u32,
    /// The check value of the master key being rebuilt.
    #[schema(example = "88dad7c8")]
    key: Option<String>,
}

/// Filters of the request journal.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct JournalListQuery {
    /// Only requests of this HTTP method (case-insensitive).
    #[param(example = "POST")]
    method: Option<String>,
    /// Only requests whose path starts with this.
    #[param(example = "/v1/card-tokens")]
    path_prefix: Option<String>,
    /// Only this status (`404`) or status class (`5xx`).
    #[param(example = "5xx")]
    status: Option<String>,
    /// Only requests of this API client.
    client_id: Option<String>,
    /// Only requests with this `request-id`.
    request_id: Option<String>,
    /// Only requests recorded at or after this moment (RFC 3339).
    #[param(example = "2026-12-03T06:00:00Z")]
    since: Option<String>,
}

/// `id` of a journal entry.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct JournalEntryPath {
    /// The entry's `id`.
    id: String,
}

/// One recorded request of a test account, secrets redacted.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JournalEntry {
    id: String,
    #[schema(example = "T12345678")]
    account_id: String,
    /// When the request arrived (RFC 3339, milliseconds).
    recorded_at: String,
    #[schema(example = "POST")]
    method: String,
    #[schema(example = "/v1/card-tokens")]
    path: String,
    /// The query string without `?`, or `null`.
    query: Option<String>,
    #[schema(example = 201)]
    status: u16,
    latency_ms: u64,
    /// The request's `request-id`.
    request_id: Option<String>,
    /// The API client, when the request carried a valid access token.
    client_id: Option<String>,
    /// The request's `Idempotency-Key`.
    idempotency_key: Option<String>,
    request: JournalRequest,
    response: JournalResponse,
    /// Set when a sandbox fault made the request fail on purpose.
    fault: Option<String>,
}

/// What was sent: the headers (credentials redacted) and the body (JSON as JSON, other text as
/// a string, `null` when empty; secret values redacted; cut beyond 64 KiB).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JournalRequest {
    #[schema(value_type = Object)]
    headers: serde_json::Value,
    body: Option<serde_json::Value>,
}

/// What was answered: the body, as for the request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JournalResponse {
    body: Option<serde_json::Value>,
}

/// The result of clearing a journal.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JournalCleared {
    #[schema(example = "T12345678")]
    account_id: String,
    /// Entries removed.
    deleted: u64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// The public keys that verify access tokens (RFC 7517).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    kid: String,
    /// The public key, base64url without padding.
    x: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[schema(rename = "use", example = "sig")]
    key_use: String,
}
