//! tokenvault: a self-hostable server that speaks Dintero's customer-token and card-token APIs.
//!
//! Data flows one way: [`http`] (axum routers and extractors) → [`domain`] (types, validation)
//! → [`store`] (SQLite or PostgreSQL behind one trait). [`auth`] issues and checks the JWTs every
//! call carries; [`crypto`] keeps card tokens encrypted at rest; [`app`] wires it all up.

pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod import;
pub mod seed;
pub mod settings;
pub mod store;
pub mod transfer;
pub mod webhooks;
