//! `GET /healthz` and `GET /version`: unauthenticated, for load balancers and people.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/version", get(version))
}

/// 200 with an empty body when the store answers, 500 otherwise (Fleet's convention).
async fn healthz(State(state): State<SharedState>) -> Response {
    match state.store.ping().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => {
            tracing::warn!(%error, check = "db", "health check failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Serialize)]
pub struct VersionInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub build_date: &'static str,
    pub rustc: &'static str,
}

pub const VERSION: VersionInfo = VersionInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("FLOTILLA_GIT_REVISION"),
    build_date: env!("FLOTILLA_BUILD_DATE"),
    rustc: env!("FLOTILLA_RUSTC_VERSION"),
};

async fn version() -> Response {
    axum::Json(&VERSION).into_response()
}
