//! Flotilla's HTTP surface and the `flotilla` binary.
//!
//! - [`osquery`] — the osquery TLS remote API (`/api/osquery/*`, `/api/v1/osquery/*`).
//! - [`fleet`] — the Fleet-compatible admin REST API (`/api/{v1,2022-04,latest}/fleet/*`).
//! - [`health`] — `/healthz`, `/readyz` and `/version`.
//! - [`metrics`] — `/metrics` (Prometheus) and the middleware that records every request.
//! - [`app`] — every router merged into one, given an [`state::AppState`].
//! - [`client`] — the admin's command line: `flotilla login`, `query`, `get`, `apply`, ….
//! - [`server`] — `flotilla serve`: data directory, store, engine, TLS, graceful shutdown.
//! - [`tls`], [`logsink`], [`carves`], [`agent_config`] — what the handlers lean on;
//!   [`agent_options`] (validation), [`reports`] (query reports), [`webhook`] (log delivery).

pub mod agent_config;
pub mod agent_options;
pub mod app;
pub mod carves;
pub mod cli;
pub mod client;
pub mod fleet;
pub mod health;
pub mod kafka;
pub mod live;
pub mod logsink;
pub mod metrics;
pub mod osquery;
pub mod reports;
pub mod server;
pub mod spool;
pub mod state;
pub mod tls;
pub mod webhook;
