//! Handlers, one module per resource. Each checks the caller first, then the input, then asks
//! the store.

pub mod auth;
pub mod card_tokens;
pub mod customer_tokens;
pub mod customers;
pub mod docs;
pub mod hooks;
pub mod meta;
pub mod sandbox;
pub mod token_events;
