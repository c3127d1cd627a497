//! `POST /api/fleet/orbit/config`: what orbit pulls every 30 s, from memory.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::authenticate;
use crate::fleet::error::{FleetError, FleetJson};
use crate::state::SharedState;

/// The body of every authenticated orbit request that carries nothing else.
#[derive(Deserialize)]
pub struct KeyBody {
    #[serde(default)]
    pub orbit_node_key: Option<String>,
}

/// The host's orbit config, built once per change of agent options for its team and platform
/// ([`AgentConfigs::orbit_for_host`](crate::agent_config::AgentConfigs::orbit_for_host)).
pub async fn config(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<KeyBody>,
) -> Result<Response, FleetError> {
    let host = authenticate(&state, body.orbit_node_key.as_deref()).await?;
    let bytes = state.agent_configs.orbit_for_host(&host);
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}
