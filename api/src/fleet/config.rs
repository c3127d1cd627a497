//! The organisation's settings (`GET/PATCH /config`) with the global agent options, a team's
//! agent options (`POST /teams/{id}/agent_options`), and query reports
//! (`GET /queries/{id}/report`, `GET /hosts/{id}/queries/{query_id}`).
//!
//! What a change does is [`crate::service::settings`]'s; these handlers read the settings and
//! reports and map the answers.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::{HostId, TeamId};
use flotilla_storage::admin::QueryId;
use serde_json::{Map, Value, json};

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::service::Viewer;
use crate::service::settings::{ApplyParams, merge};
use crate::state::{AppState, SharedState};

/// The settings document, as `GET /config` shows it.
async fn config_json(state: &AppState, viewer: &Viewer) -> Result<Value, FleetError> {
    let settings = state.services.settings.stored_settings().await?;
    let mut config = json!({
        "org_info": {"org_name": "", "org_logo_url": "", "org_logo_url_light_background": "", "contact_url": ""},
        "server_settings": {
            "server_url": "",
            "live_query_disabled": false,
            "query_reports_disabled": false,
            "scripts_disabled": false,
            "deferred_save_host": false,
            "enable_analytics": false,
            "query_report_cap": state.reports.cap(),
            "ai_features_disabled": false,
        },
        "features": {"enable_host_users": true, "enable_software_inventory": true},
        "host_expiry_settings": {"host_expiry_enabled": false, "host_expiry_window": 0},
        "webhook_settings": {},
        "integrations": {},
        "fleet_desktop": {"transparency_url": ""},
    });
    merge(&mut config, &settings);
    // The cap in use is the server's, whatever was stored.
    config["server_settings"]["query_report_cap"] = json!(state.reports.cap());
    if viewer.can_write(None) {
        config["agent_options"] = state.agent_configs.inputs().global_options.clone();
    }
    Ok(config)
}

/// `GET /config`.
pub async fn get(State(state): State<SharedState>, viewer: Viewer) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    Ok(ok(&config_json(&state, &viewer).await?))
}

/// `PATCH /config` (`?force`, `?dry_run`): any subset of the settings; answers the whole
/// settings document.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(patch): FleetJson<Map<String, Value>>,
) -> Result<Response, FleetError> {
    state
        .services
        .settings
        .apply_config(&viewer, patch, &params)
        .await?;
    Ok(ok(&config_json(&state, &viewer).await?))
}

/// `POST /teams/{id}/agent_options` (`?force`, `?dry_run`): the body is the team's whole agent
/// options document; answers the team.
pub async fn team_agent_options(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(options): FleetJson<Value>,
) -> Result<Response, FleetError> {
    state
        .services
        .settings
        .apply_team_agent_options(&viewer, TeamId(id), &options, &params)
        .await?;
    super::teams::team_response(&state, &viewer, TeamId(id)).await
}

// ---------------------------------------------------------------------------------------------
// Query reports

fn parse_query_id(text: &str) -> Result<QueryId, FleetError> {
    text.parse()
        .map(QueryId)
        .map_err(|_| FleetError::BadRequest(format!("`{text}` is not a query id")))
}

/// A host's name as reports show it, and whether the viewer may see the host.
fn host_name_if_visible(state: &AppState, viewer: &Viewer, host: HostId) -> Option<String> {
    let (record, _) = state.hosts.record(host)?;
    viewer
        .can_read(record.team)
        .then(|| record.hostname.to_string())
}

/// `GET /queries/{id}/report`: every host's latest rows for a scheduled query, among the
/// hosts the viewer may see.
pub async fn query_report(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
) -> Result<Response, FleetError> {
    let id = parse_query_id(&id)?;
    let query = state.services.queries.readable(&viewer, id).await?;
    let (hosts, clipped) = state.reports.query(query.id);
    let mut results = Vec::new();
    for (host, report) in hosts {
        let Some(host_name) = host_name_if_visible(&state, &viewer, host) else {
            continue;
        };
        for row in report.rows.iter() {
            let columns: Value = serde_json::from_str(row).unwrap_or(Value::Null);
            results.push(json!({
                "host_id": host.0,
                "host_name": host_name,
                "last_fetched": rfc3339(report.last_fetched),
                "columns": columns,
            }));
        }
    }
    Ok(ok(&json!({
        "query_id": query.id.0,
        "report_clipped": clipped,
        "results": results,
    })))
}

/// `GET /hosts/{id}/queries/{query_id}`: one host's latest rows for a scheduled query.
pub async fn host_query_report(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath((host, query)): FleetPath<(u64, String)>,
) -> Result<Response, FleetError> {
    let query = state
        .services
        .queries
        .readable(&viewer, parse_query_id(&query)?)
        .await?;
    let host = HostId(host);
    let host_name = host_name_if_visible(&state, &viewer, host)
        .ok_or_else(|| FleetError::NotFound(format!("host {host} not found")))?;
    let (report, clipped) = state.reports.host(query.id, host);
    let results: Vec<Value> = report
        .as_ref()
        .map(|r| {
            r.rows
                .iter()
                .map(|row| json!({ "columns": serde_json::from_str::<Value>(row).unwrap_or(Value::Null) }))
                .collect()
        })
        .unwrap_or_default();
    Ok(ok(&json!({
        "query_id": query.id.0,
        "host_id": host.0,
        "host_name": host_name,
        "last_fetched": report.map(|r| rfc3339(r.last_fetched)),
        "report_clipped": clipped,
        "results": results,
    })))
}
