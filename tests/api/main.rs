//! The HTTP integration suite of tokenvault: one binary, a module per feature. Every HTTP test
//! runs against both backends (SQLite and PostgreSQL) through `backend_tests!`.

#[macro_use]
mod helpers;
#[path = "../support/postgres.rs"]
mod pg;
#[path = "../support/receiver.rs"]
mod receiver;

mod auth;
mod auth_edge;
mod auth_security;
mod card_tokens;
mod clock;
mod customer_tokens;
mod customers;
mod disk_full;
mod errors;
mod faults;
mod idempotency;
mod journal;
mod key_rotation;
mod observability;
mod overload;
mod paging_props;
mod persistence;
mod sandbox;
mod sessions;
mod token_events;
mod token_values;
mod webhook_trigger;
