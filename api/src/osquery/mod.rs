//! The osquery TLS remote API: enroll, config, distributed read/write, log, carve.
//! Served under `/api/osquery/*` and the `/api/v1/osquery/*` alias that osquery flags usually
//! name. Handlers extract, make one call into the engine or a sink, and answer in osquery's form.

pub mod body;
pub mod carves;
pub mod error;
pub mod wire;

pub(crate) mod carve;
mod config;
pub(crate) mod distributed;
pub(crate) mod enroll;
pub mod log;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
        .route("/carve/block", post(carve::block))
        .layer(middleware::from_fn(answer_in_time));
    Router::new()
        .nest("/api/osquery", routes.clone())
        .nest("/api/v1/osquery", routes)
}

/// osquery gives up on a request after 16 s and retries it; answering after that only produces
/// duplicates. So every osquery request is answered within this bound, with a retryable error
/// if it must be (a slow body upload, say), never with an empty body osquery would read as
/// success.
const OSQUERY_DEADLINE: Duration = Duration::from_secs(14);

async fn answer_in_time(request: Request, next: Next) -> Response {
    match tokio::time::timeout(OSQUERY_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::OsqueryError::Unavailable(
            "the server could not answer within osquery's request timeout; retry".into(),
        )
        .into_response(),
    }
}

/// `{}`: success, in a body osquery can parse.
fn empty_object() -> Response {
    json_response(StatusCode::OK, &b"{}"[..])
}
