//! `app`: the whole HTTP surface as one router, built apart from serving it so tests can drive
//! it directly.

use axum::Router;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::state::SharedState;

pub fn app(state: SharedState) -> Router {
    Router::new()
        .merge(crate::osquery::router())
        .merge(crate::fleet::router())
        .merge(crate::health::router())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .with_state(state)
}
