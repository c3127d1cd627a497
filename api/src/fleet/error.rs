//! `FleetError`: every failure of the admin API, in Fleet's JSON error shape and with Fleet's
//! status codes, plus extractors (`FleetJson`, `FleetQuery`, `FleetPath`) whose rejections use
//! that shape too, so a malformed request never gets axum's plain-text error.
//!
//! ```json
//! {"message": "Validation Failed", "errors": [{"name": "password", "reason": "…"}], "uuid": "…"}
//! ```

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_engine::store::StoreError;
use flotilla_storage::admin::AdminError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::request_body::{BodyError, read_limited};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// 400: the request cannot be read (bad JSON, a bad query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 413: the request body is larger than the server takes.
    #[error("{0}")]
    TooLarge(String),
    /// 401: no valid session. The reason is for the caller; the message is Fleet's.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the viewer's roles do not allow this.
    #[error("forbidden")]
    Forbidden,
    /// 404: what was asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// 409: a unique name or email is taken.
    #[error("{0}")]
    Conflict(String),
    /// 422: a field's value is not acceptable.
    #[error("{name}: {reason}")]
    Validation { name: String, reason: String },
    /// 429 with `Retry-After`.
    #[error("limit exceeded, retry after: {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    /// 429 with `Retry-After` and a reason: a capacity limit rather than a rate, e.g. too many
    /// live queries running at once.
    #[error("{reason}")]
    TooMany {
        reason: String,
        retry_after_secs: u64,
    },
    /// 503: the database is unreachable; retrying may work. Details are logged only.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with a reason meant for the user: a service the request needs is down (e.g. the
    /// relay between nodes); retrying later works.
    #[error("{0}")]
    ServiceDown(String),
    /// 500: a bug or broken data. Details are logged only.
    #[error("{0}")]
    Internal(String),
}

impl FleetError {
    pub fn validation(name: &str, reason: impl Into<String>) -> FleetError {
        FleetError::Validation {
            name: name.into(),
            reason: reason.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            FleetError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FleetError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FleetError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            FleetError::Forbidden => StatusCode::FORBIDDEN,
            FleetError::NotFound(_) => StatusCode::NOT_FOUND,
            FleetError::Conflict(_) => StatusCode::CONFLICT,
            FleetError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            FleetError::RateLimited { .. } | FleetError::TooMany { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            FleetError::Unavailable(_) | FleetError::ServiceDown(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            FleetError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    errors: [ErrorDetail<'a>; 1],
    uuid: String,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    name: &'a str,
    reason: &'a str,
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let status = self.status();
        let uuid = uuid::Uuid::new_v4().to_string();
        let detail = self.to_string();
        let (message, name, reason): (&str, &str, &str) = match &self {
            FleetError::BadRequest(reason) => ("Bad request", "base", reason),
            FleetError::TooLarge(reason) => ("Request Entity Too Large", "base", reason),
            FleetError::Unauthorized(reason) => ("Authentication failed", "base", reason),
            FleetError::Forbidden => ("Permission Denied", "base", "forbidden"),
            FleetError::NotFound(reason) => ("Resource Not Found", "base", reason),
            FleetError::Conflict(reason) => ("Resource Already Exists", "base", reason),
            FleetError::Validation { name, reason } => ("Validation Failed", name, reason),
            FleetError::RateLimited { .. } => (&detail, "base", &detail),
            FleetError::TooMany { reason, .. } => ("Too Many Requests", "base", reason),
            FleetError::Unavailable(_) => (
                "Service Unavailable",
                "base",
                "the database is unavailable; try again",
            ),
            FleetError::ServiceDown(reason) => ("Service Unavailable", "base", reason),
            FleetError::Internal(_) => ("Internal Server Error", "base", "internal error"),
        };
        if status.is_server_error() {
            tracing::error!(%uuid, error = %detail, "admin request failed");
        } else {
            tracing::debug!(%uuid, error = %detail, status = status.as_u16(), "admin request refused");
        }
        let body = ErrorBody {
            message,
            errors: [ErrorDetail { name, reason }],
            uuid,
        };
        let mut response = json_response(status, &body);
        if let FleetError::RateLimited { retry_after_secs }
        | FleetError::TooMany {
            retry_after_secs, ..
        } = self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

/// A JSON response indented like Fleet's.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(bytes) => {
            let mut response = Response::new(axum::body::Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "serialising a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `200 OK` with `body` as JSON.
pub fn ok<T: Serialize>(body: &T) -> Response {
    json_response(StatusCode::OK, body)
}

impl From<StoreError> for FleetError {
    fn from(error: StoreError) -> Self {
        crate::metrics::ADMIN_STORE_ERRORS.incr();
        match error {
            StoreError::Unavailable(why) => FleetError::Unavailable(why),
            StoreError::Data(why) => FleetError::Internal(why),
        }
    }
}

impl From<AdminError> for FleetError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Conflict(why) => FleetError::Conflict(why),
            AdminError::NotFound(why) => FleetError::NotFound(why),
            AdminError::Invalid(why) => FleetError::validation("base", why),
            AdminError::Store(error) => error.into(),
        }
    }
}

/// A JSON body. Unlike `axum::Json` it does not insist on a `Content-Type` (a `curl -d` sends
/// form encoding), and every rejection is a [`FleetError::BadRequest`].
pub struct FleetJson<T>(pub T);

/// The largest admin request body (axum's default body limit).
pub const ADMIN_BODY_LIMIT: usize = 2 * 1024 * 1024;

impl<S, T> FromRequest<S> for FleetJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = FleetError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = read_limited(&parts.headers, body, ADMIN_BODY_LIMIT)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => FleetError::TooLarge(format!(
                    "the request body is larger than the {ADMIN_BODY_LIMIT} bytes the server takes"
                )),
                BodyError::Failed(e) => {
                    FleetError::BadRequest(format!("reading the request body: {e}"))
                }
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(FleetJson)
            .map_err(|e| FleetError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

impl From<JsonRejection> for FleetError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return FleetError::TooLarge(rejection.body_text());
        }
        FleetError::BadRequest(rejection.body_text())
    }
}

/// Query-string parameters; a bad one is a [`FleetError::BadRequest`].
pub struct FleetQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for FleetQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = FleetError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| FleetQuery(q.0))
            .map_err(|e: QueryRejection| FleetError::BadRequest(e.body_text()))
    }
}

/// Path parameters; a bad one (`/hosts/abc`) is a [`FleetError::BadRequest`].
pub struct FleetPath<T>(pub T);

impl<S, T> FromRequestParts<S> for FleetPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = FleetError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| FleetPath(p.0))
            .map_err(|e: PathRejection| FleetError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_have_fleets_shape_and_status() {
        let response = FleetError::validation("password", "too short").into_response();
        assert_eq!(response.status(), 422);
        let json = body(response).await;
        assert_eq!(json["message"], "Validation Failed");
        assert_eq!(json["errors"][0]["name"], "password");
        assert_eq!(json["errors"][0]["reason"], "too short");
        assert!(json["uuid"].is_string());
    }

    #[tokio::test]
    async fn server_errors_hide_their_details() {
        let response = FleetError::Internal("disk /dev/sda1 on fire".into()).into_response();
        assert_eq!(response.status(), 500);
        let text = body(response).await.to_string();
        assert!(!text.contains("sda1"), "{text}");
        let response =
            FleetError::Unavailable("sqlite busy at /secret/path".into()).into_response();
        assert_eq!(response.status(), 503);
        assert!(!body(response).await.to_string().contains("/secret/path"));
    }

    #[tokio::test]
    async fn rate_limits_say_when_to_retry() {
        let response = FleetError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let json = body(response).await;
        assert_eq!(json["message"], "limit exceeded, retry after: 7s");
    }

    #[tokio::test]
    async fn malformed_json_is_a_fleet_bad_request() {
        let request = Request::builder()
            .body(axum::body::Body::from("{\"email\": "))
            .unwrap();
        let error = FleetJson::<serde_json::Value>::from_request(request, &())
            .await
            .err()
            .unwrap();
        assert!(matches!(error, FleetError::BadRequest(ref m) if m.contains("JSON")));
        let request = Request::builder().body(axum::body::Body::empty()).unwrap();
        let FleetJson(empty) = FleetJson::<serde_json::Value>::from_request(request, &())
            .await
            .ok()
            .unwrap();
        assert_eq!(empty, serde_json::json!({}), "an empty body reads as {{}}");
    }
}
