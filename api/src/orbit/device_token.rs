//! `POST /api/fleet/orbit/device_token` and `PUT /api/fleet/orbit/device_mapping`.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::hosts::DeviceTokenError;
use serde::Deserialize;
use serde_json::json;

use super::authenticate;
use crate::fleet::error::{FleetError, FleetJson, ok};
use crate::state::SharedState;

#[derive(Deserialize)]
pub struct TokenBody {
    #[serde(default)]
    orbit_node_key: Option<String>,
    #[serde(default)]
    device_auth_token: String,
}

/// Sets the token Fleet Desktop and the My Device page authenticate with: 400 when it is
/// empty or would change in a URL, 409 when another host holds it.
pub async fn set_token(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<TokenBody>,
) -> Result<Response, FleetError> {
    let host = authenticate(&state, body.orbit_node_key.as_deref()).await?;
    state
        .hosts
        .set_device_token(
            host.id,
            &body.device_auth_token,
            flotilla_engine::unix_now(),
        )
        .await
        .map_err(|error| match error {
            DeviceTokenError::Invalid(why) => FleetError::BadRequest(why.to_string()),
            DeviceTokenError::Conflict => FleetError::Conflict(error.to_string()),
            DeviceTokenError::UnknownHost => {
                FleetError::Unauthorized("invalid orbit node key".into())
            }
            DeviceTokenError::Store(error) => error.into(),
        })?;
    Ok(ok(&json!({})))
}

#[derive(Deserialize)]
pub struct MappingBody {
    #[serde(default)]
    orbit_node_key: Option<String>,
    #[serde(default)]
    email: String,
}

/// Records the end-user email orbit was given (`--end-user-email`); shown with the host.
pub async fn set_mapping(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<MappingBody>,
) -> Result<Response, FleetError> {
    let host = authenticate(&state, body.orbit_node_key.as_deref()).await?;
    let email = body.email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 255 {
        return Err(FleetError::validation("email", "invalid email address"));
    }
    state
        .hosts
        .set_device_mapping(host.id, email, flotilla_engine::unix_now())
        .await?;
    Ok(ok(&json!({})))
}
