//! Flotilla's HTTP surface and the `flotilla` binary.
//!
//! - [`osquery`] — the osquery TLS remote API (`/api/osquery/*`, `/api/v1/osquery/*`).
//! - [`fleet`] — the Fleet-compatible admin REST API (`/api/{v1,2022-04,latest}/fleet/*`).
//! - [`health`] — `/healthz`, `/readyz` and `/version`.
//! - [`metrics`] — `/metrics` (Prometheus) and the middleware that records every request.
//! - [`app`] — every router merged into one, given an [`state::AppState`].
//! - [`client`] — the admin's command line: `flotilla login`, `query`, `get`, `apply`, ….
//! - [`server`] — `flotilla serve`: data directory, store, engine, TLS, graceful shutdown.
//! - [`logs`] — where osquery's result and status logs go: files, stdout, webhook, Kafka,
//!   through an on-disk spool.
//! - [`agent_config`] — what hosts pull: the config built from agent options and scheduled
//!   queries, the options' validation, and query reports.
//! - [`tls`] — the development CA and certificate, rustls' server config.

pub mod agent_config;
pub mod app;
pub mod cli;
pub mod client;
pub mod device;
pub mod fleet;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod orbit;
pub mod osquery;
pub mod request_body;
pub mod server;
pub mod service;
pub mod state;
pub mod tls;
pub mod units;
pub mod updates;
pub mod usage;
