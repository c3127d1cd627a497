use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use flotilla_engine::enroll::{EnrollError, EnrollRequest};

use super::body::{parse, read_body};
use super::error::{OsqueryError, json_response};
use super::wire::{EnrollBody, scalar_text};
use crate::state::SharedState;

/// `POST /api/osquery/enroll`: enroll secret and host details in, `{"node_key"}` out.
pub async fn enroll(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    let bytes = read_body(&headers, body, state.limits.default).await?;
    let enroll = enroll_request(parse(&bytes)?);
    let key = state
        .hosts
        .enroll(enroll, flotilla_engine::unix_now())
        .await
        .map_err(|error| match error {
            EnrollError::InvalidSecret
            | EnrollError::MissingIdentifier
            | EnrollError::MissingHardwareUuid => OsqueryError::NodeInvalid(error.to_string()),
            EnrollError::Unavailable(_) => OsqueryError::Unavailable(error.to_string()),
        })?;
    let body = serde_json::to_vec(&serde_json::json!({ "node_key": key.as_str() }))
        .expect("a JSON object serialises");
    Ok(json_response(StatusCode::OK, body))
}

/// What the engine needs of an enroll body: the secret, the identifier, and the three
/// `host_details` tables it reads (values as osquery would have written them).
pub fn enroll_request(request: EnrollBody) -> EnrollRequest {
    let mut details = request.host_details.unwrap_or_default();
    let mut table = |name: &str| {
        details.remove(name).map(|row| {
            row.iter()
                .map(|(k, v)| (k.clone(), scalar_text(v)))
                .collect()
        })
    };
    EnrollRequest {
        enroll_secret: request.enroll_secret.unwrap_or_default(),
        host_identifier: request.host_identifier.unwrap_or_default(),
        os_version: table("os_version"),
        osquery_info: table("osquery_info"),
        system_info: table("system_info"),
    }
}
