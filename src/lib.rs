//! tokenvault: a self-hostable server that speaks Dintero's customer-token and card-token APIs.
//!
//! Data flows one way: [`http`] (axum routers and extractors) → [`domain`] (types, validation)
//! → [`store`] (SQLite or PostgreSQL behind one trait). [`auth`] issues and checks the JWTs every
//! call carries.

pub mod config;
pub mod domain;
pub mod store;
