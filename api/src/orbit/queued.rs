//! The routes orbit calls for work the server queued — scripts and software installs. Flotilla
//! queues none (orbit's config lists no pending execution or install), so each answers as a
//! server with nothing queued does: the host is authenticated, and the execution or install
//! it names is not found (404).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::authenticate;
use crate::fleet::error::{FleetError, FleetJson};
use crate::state::SharedState;

/// Any of these bodies: the key (also under orbit ≤ 1.38's misspelling) and the id of the
/// work asked about.
#[derive(Deserialize)]
pub struct QueuedBody {
    #[serde(default, alias = "orbot_node_key")]
    orbit_node_key: Option<String>,
    #[serde(default)]
    execution_id: Option<String>,
    #[serde(default)]
    install_uuid: Option<String>,
    #[serde(default)]
    installer_id: Option<serde_json::Value>,
}

async fn nothing_queued(
    state: &SharedState,
    body: &QueuedBody,
    what: &str,
    id: Option<String>,
) -> Result<Response, FleetError> {
    authenticate(state, body.orbit_node_key.as_deref()).await?;
    let id = id.unwrap_or_default();
    Err(FleetError::NotFound(format!(
        "{what} {id} is not queued for this host"
    )))
}

pub async fn script_request(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<QueuedBody>,
) -> Result<Response, FleetError> {
    let id = body.execution_id.clone();
    nothing_queued(&state, &body, "script execution", id).await
}

pub async fn script_result(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<QueuedBody>,
) -> Result<Response, FleetError> {
    let id = body.execution_id.clone();
    nothing_queued(&state, &body, "script execution", id).await
}

pub async fn install_details(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<QueuedBody>,
) -> Result<Response, FleetError> {
    let id = body.install_uuid.clone();
    nothing_queued(&state, &body, "software install", id).await
}

pub async fn install_package(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<QueuedBody>,
) -> Result<Response, FleetError> {
    let id = body.installer_id.as_ref().map(|v| v.to_string());
    nothing_queued(&state, &body, "software installer", id).await
}

pub async fn install_result(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<QueuedBody>,
) -> Result<Response, FleetError> {
    let id = body.install_uuid.clone();
    nothing_queued(&state, &body, "software install", id).await
}
