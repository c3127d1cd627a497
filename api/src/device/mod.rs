//! Fleet Desktop and the My Device page: `/api/{v1,latest}/fleet/device/{token}/…`, where the
//! host's device token (set by orbit, rotated hourly) is the only credential, and the
//! unauthenticated `HEAD /api/fleet/device/ping`.
//!
//! The token is looked up in the engine's registry ([`Hosts::authenticate_device`]), so a
//! Desktop poll costs no database read for it. An address that presents 1,000 bad tokens in a
//! row within a minute is refused for a minute (429), per node, as Fleet does.
//!
//! [`Hosts::authenticate_device`]: flotilla_engine::Hosts::authenticate_device

mod routes;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, head, post};
use flotilla_engine::hosts::HostError;
use flotilla_engine::record::HostRecord;

use crate::fleet::auth::ClientIp;
use crate::fleet::error::FleetError;
use crate::orbit::CAPABILITIES_HEADER;
use crate::state::SharedState;

/// What Fleet Desktop is told this server takes: its error reports.
pub const DEVICE_CAPABILITIES: &str = "error_reporting";

/// The routes under `/api/{version}/fleet`, handed to [`crate::fleet::router`].
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/device/{token}", get(routes::host))
        .route("/device/{token}/ping", head(routes::ping))
        .route("/device/{token}/desktop", get(routes::desktop))
        .route("/device/{token}/policies", get(routes::policies))
        .route("/device/{token}/software", get(routes::software))
        .route("/device/{token}/refetch", post(routes::refetch))
        .route("/device/{token}/transparency", get(routes::transparency))
        .route("/device/{token}/debug/errors", post(routes::debug_errors))
        .route(
            "/device/{token}/device_mapping",
            get(routes::device_mapping),
        )
        .route("/device/{token}/macadmins", get(routes::macadmins))
}

/// `HEAD /api/fleet/device/ping`, unversioned and unauthenticated.
pub fn unversioned() -> Router<SharedState> {
    Router::new().route("/api/fleet/device/ping", head(device_ping))
}

async fn device_ping() -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    response.headers_mut().insert(
        CAPABILITIES_HEADER,
        HeaderValue::from_static(DEVICE_CAPABILITIES),
    );
    response
}

/// The host whose device token is in the path: 401 in Fleet's JSON for a bad or expired token,
/// 429 while the client's address is banned.
pub struct DeviceHost(pub HostRecord);

impl FromRequestParts<SharedState> for DeviceHost {
    type Rejection = FleetError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientIp(None));
        let bans = &state.device.bans;
        if let Err(wait) = bans.check(ip) {
            return Err(FleetError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let token = Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(token)| token)
            .unwrap_or_default();
        if token.is_empty() {
            bans.failed(ip);
            return Err(FleetError::Unauthorized(
                "missing device authentication token".into(),
            ));
        }
        match state
            .hosts
            .authenticate_device(&token, flotilla_engine::unix_now())
            .await
        {
            Ok(host) => {
                bans.succeeded(ip);
                Ok(DeviceHost(host))
            }
            Err(HostError::Busy(why)) => Err(FleetError::ServiceDown(why.into())),
            Err(_) => {
                bans.failed(ip);
                Err(FleetError::Unauthorized(
                    "invalid device authentication token".into(),
                ))
            }
        }
    }
}
