//! `app`: the whole HTTP surface as one router, built apart from serving it so tests can drive
//! it directly.

use axum::Router;

use crate::state::SharedState;

pub fn app(state: SharedState) -> Router {
    let tuf = match &state.updates {
        Some(updates) => crate::updates::serve::router(updates.clone()),
        None => Router::new(),
    };
    Router::new()
        .merge(tuf)
        .merge(crate::osquery::router())
        .merge(crate::orbit::router())
        .merge(crate::fleet::router(
            crate::live::routes::router().merge(crate::device::routes()),
        ))
        .merge(crate::device::unversioned())
        .merge(crate::health::router(state.health.clone()))
        .merge(crate::metrics::router(state.metrics.clone()))
        // Metrics and the per-request log line; `Router::layer` wraps each route, so the
        // middleware sees the matched route template.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}
