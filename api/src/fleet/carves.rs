//! File carves, for global admins (Fleet's rule): `GET /carves`, `GET /carves/{id}` and
//! `GET /carves/{id}/block/{block_id}`, which `fleetctl get carve` reads block by block. Any
//! node answers: the blocks are in the store.

use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine as _;
use flotilla_storage::carves::Carve;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetQuery, ok};
use super::{ListParams, rfc3339};
use crate::service::Viewer;
use crate::state::SharedState;

#[derive(Serialize)]
struct CarveJson {
    id: u64,
    host_id: u64,
    created_at: String,
    name: String,
    block_count: u64,
    block_size: u64,
    carve_size: u64,
    carve_id: String,
    request_id: String,
    session_id: String,
    expired: bool,
    max_block: i64,
    error: Option<String>,
    /// Flotilla's: distinct blocks received, when the carve completed, and where the node that
    /// completed it assembled the file.
    blocks_received: u64,
    completed_at: Option<String>,
    path: Option<String>,
}

impl From<Carve> for CarveJson {
    fn from(c: Carve) -> Self {
        CarveJson {
            id: c.id,
            host_id: c.host.0,
            created_at: rfc3339(c.created_at),
            name: c.name,
            block_count: c.block_count,
            block_size: c.block_size,
            carve_size: c.carve_size,
            carve_id: c.carve_id,
            request_id: c.request_id,
            session_id: c.session_id,
            expired: c.expired,
            max_block: c.max_block,
            error: c.error,
            blocks_received: c.blocks_received,
            completed_at: c.completed_at.map(rfc3339),
            path: c.path,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CarveListParams {
    page: Option<u64>,
    per_page: Option<u64>,
    /// Include expired carves.
    expired: Option<bool>,
}

/// `GET /carves` (`page`, `per_page`, `expired`), newest first.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<CarveListParams>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let page = ListParams {
        page: params.page,
        per_page: params.per_page,
        ..ListParams::default()
    }
    .page(100)?;
    let carves = state
        .carves
        .list(params.expired.unwrap_or(false), page.offset, page.limit)
        .await?;
    let carves: Vec<CarveJson> = carves.into_iter().map(CarveJson::from).collect();
    Ok(ok(&json!({ "carves": carves })))
}

async fn carve(state: &SharedState, id: u64) -> Result<Carve, FleetError> {
    state
        .carves
        .get(id)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("carve {id} was not found")))
}

/// `GET /carves/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let carve = CarveJson::from(carve(&state, id).await?);
    Ok(ok(&json!({ "carve": carve })))
}

/// `GET /carves/{id}/block/{block_id}`: `{"data": <the block's bytes in base64>}`.
pub async fn block(
    State(state): State<SharedState>,
    viewer: Viewer,
    Path((id, block_id)): Path<(u64, u64)>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let carve = carve(&state, id).await?;
    if carve.expired {
        return Err(FleetError::BadRequest(
            "cannot get block for expired carve".into(),
        ));
    }
    if block_id >= carve.block_count {
        return Err(FleetError::BadRequest(format!(
            "block {block_id} is out of range for {} blocks",
            carve.block_count
        )));
    }
    let data = state
        .carves
        .stored_block(id, block_id)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("block {block_id} not yet available")))?;
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    Ok(ok(&json!({ "data": data })))
}
