//! The device-authenticated routes: each takes the [`DeviceHost`] the token names, makes one
//! read (or the refetch) and answers in Fleet's shape. Nothing here identifies the user beyond
//! what the host itself reports.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_engine::HostId;
use flotilla_storage::admin::HostPolicy;
use serde::Deserialize;
use serde_json::{Value, json};

use super::DeviceHost;
use crate::fleet::error::{FleetError, FleetQuery, ok};
use crate::fleet::hosts::{device_mapping_json, host_with_labels};
use crate::request_body::{BodyError, read_limited};
use crate::state::SharedState;

/// Where `…/transparency` sends the user when the settings name no page of the organisation's:
/// Fleet's page on what fleetd collects (the agents are Fleet's).
pub const DEFAULT_TRANSPARENCY_URL: &str = "https://fleetdm.com/transparency";

/// Largest error report Fleet Desktop may post (Fleet's limit).
pub(super) const MAX_ERROR_REPORT: usize = 5 << 20;

/// The organisation's name, logos and contact link, as Desktop and My Device show them.
fn org_info(settings: &Value) -> Value {
    let field = |name: &str| {
        settings["org_info"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    json!({
        "org_name": field("org_name"),
        "org_logo_url": field("org_logo_url"),
        "org_logo_url_light_background": field("org_logo_url_light_background"),
        "org_logo_url_dark_mode": field("org_logo_url"),
        "org_logo_url_light_mode": field("org_logo_url_light_background"),
        "contact_url": field("contact_url"),
    })
}

/// `HEAD …/{token}/ping`: 200 while the token is valid (orbit's remote check).
pub async fn ping(DeviceHost(_): DeviceHost) {}

/// `GET …/{token}/desktop`: what Fleet Desktop polls every 5 minutes — the failing-policy count
/// for its "My device (N)" title, the organisation's name and logos, nothing pending.
pub async fn desktop(
    State(state): State<SharedState>,
    DeviceHost(host): DeviceHost,
) -> Result<Response, FleetError> {
    let failing = state.reads.policies.failing_policy_count(host.id).await?;
    let settings = state.device.settings(&state.services.settings).await?;
    Ok(ok(&json!({
        "failing_policies_count": failing,
        "self_service": false,
        "notifications": {},
        "config": {
            "org_info": org_info(&settings),
            "mdm": {"macos_migration": {"mode": ""}},
        },
        "alternative_browser_host": "",
    })))
}

#[derive(Deserialize, Default)]
pub struct HostParams {
    #[serde(default)]
    exclude_software: bool,
}

/// `GET …/{token}`: the host as the My Device page shows it, with its labels, the
/// organisation's details and the settings the page needs.
pub async fn host(
    State(state): State<SharedState>,
    DeviceHost(record): DeviceHost,
    FleetQuery(params): FleetQuery<HostParams>,
) -> Result<Response, FleetError> {
    let host =
        state.reads.hosts.host(record.id).await?.ok_or_else(|| {
            FleetError::Unauthorized("invalid device authentication token".into())
        })?;
    let mut body = host_with_labels(&state, &host).await?;
    body["dep_assigned_to_fleet"] = json!(false);
    if !params.exclude_software {
        body["software"] = crate::fleet::software::host_software_json(&state, host.id).await?;
    }
    let settings = state.device.settings(&state.services.settings).await?;
    let info = org_info(&settings);
    let inventory = crate::service::effects::software_inventory_enabled(&settings);
    Ok(ok(&json!({
        "host": body,
        "self_service": false,
        "org_logo_url": info["org_logo_url"],
        "org_logo_url_light_background": info["org_logo_url_light_background"],
        "org_contact_url": info["contact_url"],
        // Flotilla has no licence tiers: everything Fleet Premium serves here is served.
        "license": {"tier": "premium", "organization": info["org_name"], "device_count": 0},
        "global_config": {
            "mdm": {"enabled_and_configured": false},
            "features": {"enable_software_inventory": inventory},
        },
    })))
}

/// A host's policy as the My Device page and Desktop read it.
fn policy_json(policy: &HostPolicy) -> Value {
    let f = &policy.fields;
    json!({
        "id": policy.id.0,
        "name": f.name,
        "query": f.query,
        "description": f.description,
        "critical": f.critical,
        "resolution": f.resolution,
        "platform": f.platform,
        "team_id": policy.team.map(|t| t.0),
        "response": match policy.response {
            Some(true) => "pass",
            Some(false) => "fail",
            None => "",
        },
    })
}

/// `GET …/{token}/policies`: the policies that apply to the host and its latest answer to each.
pub async fn policies(
    State(state): State<SharedState>,
    DeviceHost(host): DeviceHost,
) -> Result<Response, FleetError> {
    let policies: Vec<Value> = state
        .reads
        .policies
        .host_policies(host.id)
        .await?
        .iter()
        .map(policy_json)
        .collect();
    Ok(ok(&json!({ "policies": policies })))
}

/// `GET …/{token}/software`: the host's software by title, paged as the My Device page reads
/// it (`page`, `per_page`, `query`, `vulnerable`).
pub async fn software(
    State(state): State<SharedState>,
    DeviceHost(host): DeviceHost,
    FleetQuery(params): FleetQuery<crate::fleet::software::HostSoftwareParams>,
) -> Result<Response, FleetError> {
    Ok(ok(&crate::fleet::software::host_software_page(
        &state, host.id, &params,
    )
    .await?))
}

/// `POST …/{token}/refetch`: the host runs its detail queries again at its next check-in.
pub async fn refetch(
    State(state): State<SharedState>,
    DeviceHost(host): DeviceHost,
) -> Result<Response, FleetError> {
    state.hosts.refetch(host.id).await?;
    Ok(ok(&json!({})))
}

/// `GET …/{token}/transparency`: 307 to the organisation's page about what the agent collects
/// (`fleet_desktop.transparency_url`), else [`DEFAULT_TRANSPARENCY_URL`].
pub async fn transparency(
    State(state): State<SharedState>,
    DeviceHost(_): DeviceHost,
) -> Result<Response, FleetError> {
    let settings = state.device.settings(&state.services.settings).await?;
    let url = settings["fleet_desktop"]["transparency_url"]
        .as_str()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_TRANSPARENCY_URL);
    let location = HeaderValue::from_str(url)
        .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_TRANSPARENCY_URL));
    Ok((
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response())
}

/// `POST …/{token}/debug/errors`: an error fleetd reports, written to the server's log (at most
/// 5 MB; it must be a JSON object).
pub async fn debug_errors(
    DeviceHost(host): DeviceHost,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, FleetError> {
    let body = read_limited(&headers, body, MAX_ERROR_REPORT)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => FleetError::TooLarge("error report is larger than 5 MB".into()),
            BodyError::Failed(e) => FleetError::BadRequest(format!("reading the report: {e}")),
        })?;
    log_report(host.id, &body)?;
    Ok(ok(&json!({})))
}

fn log_report(host: HostId, body: &[u8]) -> Result<(), FleetError> {
    let report: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| FleetError::BadRequest(format!("error report is not a JSON object: {e}")))?;
    let text = |name: &str| {
        report
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(2_000)
            .collect::<String>()
    };
    let vital = report
        .get("vital")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    tracing::warn!(
        host = host.0,
        source = %text("error_source"),
        version = %text("error_source_version"),
        vital,
        message = %text("error_message"),
        "fleetd reported an error"
    );
    Ok(())
}

/// `GET …/{token}/device_mapping` (deprecated by Fleet; the mapping is in the host too).
pub async fn device_mapping(
    State(state): State<SharedState>,
    DeviceHost(record): DeviceHost,
) -> Result<Response, FleetError> {
    let host = state.reads.hosts.host(record.id).await?;
    let email = host.and_then(|h| h.custom_email);
    Ok(ok(&json!({
        "host_id": record.id.0,
        "device_mapping": device_mapping_json(email.as_deref()),
    })))
}

/// `GET …/{token}/macadmins`: munki and MDM details; Flotilla collects none.
pub async fn macadmins(DeviceHost(_): DeviceHost) -> Response {
    ok(&json!({ "macadmins": null }))
}
