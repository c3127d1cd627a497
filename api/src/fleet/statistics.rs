//! `GET /statistics/preview` (a Flotilla extension): exactly the usage statistics this server
//! would send now, for a global admin deciding whether to turn them on.

use axum::extract::State;
use axum::response::Response;

use super::error::{FleetError, ok};
use crate::service::Viewer;
use crate::state::SharedState;

pub async fn preview(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    Ok(ok(&state.usage.payload(&state).await?))
}
