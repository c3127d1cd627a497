use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::body::{node_key, parse, read_body};
use super::error::{OsqueryError, json_response};
use super::wire::{CarveBeginBody, CarveBlockBody, lenient_u64};
use crate::osquery::carves::{CarveBegin, CarveBlock};
use crate::state::SharedState;

/// `POST /api/osquery/carve/begin`: announces a carve; answers the `session_id` for its blocks.
pub async fn begin(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    let bytes = read_body(&headers, body, state.limits.default).await?;
    let request: CarveBeginBody = parse(&bytes)?;
    let key = node_key(request.node_key.as_deref(), &headers)?;
    let now = flotilla_engine::unix_now();
    let host = state.hosts.authenticate(key, now).await?;
    let begin = carve_begin(request)?;
    let session_id = state.carves.begin(&host, begin, now).await?;
    let body =
        serde_json::to_vec(&serde_json::json!({ "session_id": session_id, "success": true }))
            .expect("a JSON object serialises");
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /api/osquery/carve/block`: one block of a carve. The session id and request id from
/// `begin` authenticate it; osquery 5.23 and later also send their node key in the
/// `Authorization` header, and then the block must come from the host that began the carve.
pub async fn block(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    let bytes = read_body(&headers, body, state.limits.carve_block).await?;
    let block = carve_block(parse(&bytes)?)?;
    let now = flotilla_engine::unix_now();
    let sender = match node_key(None, &headers) {
        Ok(key) => Some(state.hosts.authenticate(key, now).await?),
        Err(_) => None,
    };
    state.carves.block(block, sender.as_ref(), now).await?;
    Ok(json_response(StatusCode::OK, &br#"{"success":true}"#[..]))
}

/// A `carve/begin` body's numbers, read as osquery sends them (numbers or decimal strings).
pub fn carve_begin(request: CarveBeginBody) -> Result<CarveBegin, OsqueryError> {
    let number = |value, name: &str| {
        lenient_u64(value).ok_or_else(|| {
            OsqueryError::BadRequest(format!("{name} must be a non-negative integer"))
        })
    };
    Ok(CarveBegin {
        block_count: number(&request.block_count, "block_count")?,
        block_size: number(&request.block_size, "block_size")?,
        carve_size: number(&request.carve_size, "carve_size")?,
        carve_id: request.carve_id.unwrap_or_default(),
        request_id: request.request_id.unwrap_or_default(),
    })
}

/// A `carve/block` body as the carve store takes it.
pub fn carve_block(request: CarveBlockBody) -> Result<CarveBlock, OsqueryError> {
    Ok(CarveBlock {
        session_id: request.session_id.unwrap_or_default(),
        request_id: request.request_id.unwrap_or_default(),
        block_id: lenient_u64(&request.block_id).ok_or_else(|| {
            OsqueryError::BadRequest("block_id must be a non-negative integer".into())
        })?,
        data: request.data.unwrap_or_default(),
    })
}
