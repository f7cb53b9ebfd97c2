//! tokenvault: a self-hostable server that speaks Dintero's customer-token and card-token APIs.
//!
//! The code is built in floors, and calls only run downwards (a test, `tests/architecture.rs`,
//! keeps it so):
//!
//! - [`http`] (axum routers, extractors, the connection floor) and the command line (`src/cli`)
//!   are adapters: they turn requests and commands into calls and results into answers.
//! - [`service`] holds the use cases, each written once, over a [`service::Vault`] (store,
//!   cipher, webhook outbox); [`auth`] issues and checks the JWTs every call carries. Secrets
//!   are sealed and opened only here.
//! - [`store`] (one port, SQLite and PostgreSQL behind it) and [`crypto`] (sealing with the key
//!   ring) sit below the services and know nothing of each other.
//! - [`domain`] (types, validation, paging) depends on nothing.
//!
//! [`settings`] assembles each floor's own settings from flags, environment and file; only
//! [`app`] (start-up, which wires the floors together) and the command line read it.

pub mod app;
pub mod auth;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod service;
pub mod settings;
pub mod store;
