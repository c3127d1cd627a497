//! `OsqueryError`: every failure an osquery endpoint can report, in the form osquery reads.
//!
//! osquery ignores HTTP status codes and looks only at the body: `node_invalid: true` makes it
//! re-enroll, an `error` member makes it keep its data and retry, and an *empty* body counts as
//! success. So every error here has a JSON body with `error`; the status code is for people,
//! proxies and metrics (Fleet's choices: 401 node invalid, 413 sink failure).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum OsqueryError {
    /// Unknown or missing node key, or a refused enrollment: 401 with `node_invalid: true`.
    #[error("{0}")]
    NodeInvalid(String),
    /// The body is not what the endpoint takes: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the endpoint's limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// A log destination could not take the data: 413, so osquery keeps buffering and retries.
    #[error("{0}")]
    SinkFailed(String),
    /// Something this node depends on is busy or down; retrying later can succeed: 503.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    node_invalid: bool,
}

impl IntoResponse for OsqueryError {
    fn into_response(self) -> Response {
        let (status, node_invalid) = match &self {
            OsqueryError::NodeInvalid(_) => (StatusCode::UNAUTHORIZED, true),
            OsqueryError::BadRequest(_) => (StatusCode::BAD_REQUEST, false),
            OsqueryError::TooLarge(_) | OsqueryError::SinkFailed(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, false)
            }
            OsqueryError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, false),
        };
        let message = self.to_string();
        match &self {
            OsqueryError::SinkFailed(_) | OsqueryError::Unavailable(_) => {
                tracing::warn!(error = %message, "osquery request failed")
            }
            _ => tracing::debug!(error = %message, "osquery request refused"),
        }
        let body = serde_json::to_vec(&ErrorBody {
            error: &message,
            node_invalid,
        })
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
        json_response(status, body)
    }
}

/// A JSON response with osquery's content type.
pub fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

impl From<flotilla_engine::HostError> for OsqueryError {
    fn from(error: flotilla_engine::HostError) -> Self {
        match error {
            flotilla_engine::HostError::UnknownNodeKey
            | flotilla_engine::HostError::UnknownOrbitKey
            | flotilla_engine::HostError::UnknownDeviceToken => {
                OsqueryError::NodeInvalid("authentication error: invalid node key".into())
            }
            flotilla_engine::HostError::Busy(why) => OsqueryError::Unavailable(why.into()),
        }
    }
}
