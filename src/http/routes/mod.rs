//! Handlers, one module per resource. Each checks the caller first, then parses the input into
//! domain values, calls one use case of `service`, and renders its result.
//!
//! Repetition that is deliberate here: each operation's `#[utoipa::path]` attribute spells out
//! its summary, responses and scopes in full, also where an account-scoped alias repeats the
//! operation of another path (`/v1/card-tokens…` and `/v1/accounts/{aid}/payments/card-tokens…`),
//! and each handler's signature lists its extractors. The attribute is the operation's entry in
//! `/openapi.json`, read on its own; the shared parts are the response components in `openapi`,
//! and the handlers of an alias pair share one body (`*_in`).

pub mod auth;
pub mod card_tokens;
pub mod customer_tokens;
pub mod customers;
pub mod docs;
pub mod hooks;
pub mod journal;
pub mod meta;
pub mod sandbox;
pub mod sessions;
pub mod token_events;
pub mod transactions;
