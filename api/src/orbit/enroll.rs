//! `POST /api/fleet/orbit/enroll`.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::enroll::{EnrollError, OrbitEnrollRequest};
use serde::Deserialize;
use serde_json::json;

use crate::fleet::error::{FleetError, FleetJson, ok};
use crate::state::SharedState;

/// orbit's enroll body; every field may be missing (Windows has no serial, older orbits no
/// `platform_like`).
#[derive(Deserialize)]
pub struct EnrollBody {
    #[serde(default)]
    enroll_secret: String,
    #[serde(default)]
    hardware_uuid: String,
    #[serde(default)]
    hardware_serial: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    computer_name: String,
    #[serde(default)]
    hardware_model: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    platform_like: String,
    #[serde(default)]
    osquery_identifier: String,
}

/// Enroll secret and host identity in, `{"orbit_node_key"}` out. A wrong secret is a 401
/// (orbit retries with backoff); no hardware UUID is a 400.
pub async fn enroll(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<EnrollBody>,
) -> Result<Response, FleetError> {
    let request = OrbitEnrollRequest {
        enroll_secret: body.enroll_secret,
        hardware_uuid: body.hardware_uuid,
        hardware_serial: body.hardware_serial,
        hostname: body.hostname,
        computer_name: body.computer_name,
        hardware_model: body.hardware_model,
        platform: body.platform,
        platform_like: body.platform_like,
        osquery_identifier: body.osquery_identifier,
    };
    let key = state
        .hosts
        .enroll_orbit(request, flotilla_engine::unix_now())
        .await
        .map_err(|error| match error {
            EnrollError::InvalidSecret => FleetError::Unauthorized("invalid secret".into()),
            EnrollError::MissingHardwareUuid | EnrollError::MissingIdentifier => {
                FleetError::BadRequest(error.to_string())
            }
            EnrollError::Unavailable(why) => FleetError::Unavailable(why),
        })?;
    Ok(ok(&json!({ "orbit_node_key": key.as_str() })))
}
