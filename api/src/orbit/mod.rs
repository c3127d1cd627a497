//! The orbit API (`/api/fleet/orbit/*`, unversioned): what fleetd's agent manager calls beside
//! the osqueryd it runs. Enrollment, its config every 30 s, the capabilities ping, Fleet
//! Desktop's device token and the end-user email; the script and software-install routes
//! answer as a server with nothing queued does.
//!
//! Every authenticated request carries `orbit_node_key` in its JSON body (orbit sets no
//! `Content-Type`); a missing or unknown key is a 401, on which orbit wipes its key and enrolls
//! again. Errors use Fleet's JSON error shape ([`FleetError`]); an unknown path under the
//! prefix is a JSON 404. Handlers extract, make one call into the engine's registry
//! ([`Hosts`](flotilla_engine::Hosts)) or the agent configs, and map the answer.

mod config;
mod device_token;
mod enroll;
mod queued;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::{head, post, put};
use flotilla_engine::hosts::HostError;
use flotilla_engine::record::HostRecord;

use crate::fleet::error::FleetError;
use crate::state::AppState;
use crate::state::SharedState;

/// The header in which Fleet's server and agents list what they support.
pub const CAPABILITIES_HEADER: HeaderName = HeaderName::from_static("x-fleet-capabilities");

/// What this server offers orbit: the orbit endpoints, device-token rotation and the
/// end-user email. (No MDM: no escrow or setup-experience capabilities.)
pub const ORBIT_CAPABILITIES: &str = "orbit_endpoints,token_rotation,end_user_email";

pub fn router() -> Router<SharedState> {
    let routes = Router::new()
        .route("/enroll", post(enroll::enroll))
        .route("/config", post(config::config))
        .route("/ping", head(ping))
        .route("/device_token", post(device_token::set_token))
        .route("/device_mapping", put(device_token::set_mapping))
        .route("/scripts/request", post(queued::script_request))
        .route("/scripts/result", post(queued::script_result))
        .route("/software_install/details", post(queued::install_details))
        .route("/software_install/package", post(queued::install_package))
        .route("/software_install/result", post(queued::install_result))
        .fallback(not_found)
        // orbit reads the server's capabilities from every response it gets, so every
        // response carries them (Fleet sets them on enroll and ping; a response without them
        // would make orbit think the server lost them).
        .layer(middleware::map_response(with_capabilities));
    Router::new().nest("/api/fleet/orbit", routes)
}

async fn with_capabilities(mut response: Response) -> Response {
    response.headers_mut().insert(
        CAPABILITIES_HEADER,
        HeaderValue::from_static(ORBIT_CAPABILITIES),
    );
    response
}

/// `HEAD /api/fleet/orbit/ping`: no authentication; the capabilities header is the answer.
async fn ping() {}

async fn not_found() -> FleetError {
    FleetError::NotFound("no such orbit endpoint".into())
}

/// The host presenting `key`, or the 401 that makes orbit enroll again.
pub(crate) async fn authenticate(
    state: &AppState,
    key: Option<&str>,
) -> Result<HostRecord, FleetError> {
    let key = key.map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(FleetError::Unauthorized("missing orbit node key".into()));
    };
    state
        .hosts
        .authenticate_orbit(key, flotilla_engine::unix_now())
        .await
        .map_err(|error| match error {
            HostError::Busy(why) => FleetError::ServiceDown(why.into()),
            _ => FleetError::Unauthorized("invalid orbit node key".into()),
        })
}
