use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::body::{node_key, parse, read_body};
use super::error::{OsqueryError, json_response};
use super::wire::KeyBody;
use crate::state::SharedState;

/// `POST /api/osquery/config`: the host's osquery config, as the bare top-level object.
pub async fn config(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    let bytes = read_body(&headers, body, state.limits.default).await?;
    let request: KeyBody = parse(&bytes)?;
    let key = node_key(request.node_key.as_deref(), &headers)?;
    let host = state
        .hosts
        .authenticate(key, flotilla_engine::unix_now())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        state.agent_configs.for_host(&host),
    ))
}
