//! The osquery TLS remote API: enroll, config, distributed read/write, log, carve.
//! Served under `/api/osquery/*` and the `/api/v1/osquery/*` alias that osquery flags usually
//! name. Handlers extract, make one call into the engine or a sink, and answer in osquery's form.

pub mod body;
pub mod error;
pub mod wire;

mod carve;
mod config;
mod distributed;
mod enroll;
mod log;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use crate::state::SharedState;
use error::json_response;

pub fn router() -> Router<SharedState> {
    let routes = Router::new()
        .route("/enroll", post(enroll::enroll))
        .route("/config", post(config::config))
        .route("/distributed/read", post(distributed::read))
        .route("/distributed/write", post(distributed::write))
        .route("/log", post(log::log))
        .route("/carve/begin", post(carve::begin))
        .route("/carve/block", post(carve::block));
    Router::new()
        .nest("/api/osquery", routes.clone())
        .nest("/api/v1/osquery", routes)
}

/// `{}`: success, in a body osquery can parse.
fn empty_object() -> Response {
    json_response(StatusCode::OK, &b"{}"[..])
}
