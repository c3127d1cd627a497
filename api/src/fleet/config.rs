//! The organisation's settings (`GET/PATCH /config`) with the global agent options, a team's
//! agent options (`POST /teams/{id}/agent_options`), and query reports
//! (`GET /queries/{id}/report`, `GET /hosts/{id}/queries/{query_id}`).
//!
//! Agent options are checked with [`crate::agent_config::options::validate`] and refused with a 422
//! naming `agent_options` unless `?force=true`; `?dry_run=true` checks without saving. After a
//! change, [`reload_agent_configs`] makes every host's next config pull see it.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::{HostId, TeamId};
use flotilla_storage::admin::QueryId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Viewer;
use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::state::{AppState, SharedState};

/// `?force=true` stores agent options that fail validation; `?dry_run=true` only validates.
#[derive(Debug, Default, Deserialize)]
pub struct ApplyParams {
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// Makes the next config pull of every host see the stored agent options and queries, here
/// and (told through the relay) on every other node.
pub async fn reload_agent_configs(state: &AppState) -> Result<(), FleetError> {
    state.agent_configs.reload(state.admin.as_ref()).await?;
    state
        .hosts
        .announce_changed(flotilla_engine::relay::Topic::AgentOptions);
    Ok(())
}

/// Checks agent options; with `force` a failure is only logged.
pub fn check_agent_options(options: &Value, force: bool) -> Result<(), FleetError> {
    match crate::agent_config::options::validate(options) {
        Ok(()) => Ok(()),
        Err(reason) if force => {
            tracing::warn!(%reason, "storing agent options that fail validation (force)");
            Ok(())
        }
        Err(reason) => Err(FleetError::validation("agent_options", reason)),
    }
}

/// The settings document, as `GET /config` shows it.
async fn config_json(state: &AppState, viewer: &Viewer) -> Result<Value, FleetError> {
    let settings = state
        .admin
        .app_settings()
        .await?
        .unwrap_or_else(|| json!({}));
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
        "features": {"enable_host_users": true, "enable_software_inventory": false},
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

/// Merges `patch` into `target` key by key (objects recursively; anything else replaces).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// `GET /config`.
pub async fn get(State(state): State<SharedState>, viewer: Viewer) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    Ok(ok(&config_json(&state, &viewer).await?))
}

/// Applies a settings patch (`PATCH /config`, or a `kind: config` spec): agent options are
/// validated and replace the stored ones as a whole; other settings are merged in.
pub async fn apply_config(
    state: &AppState,
    viewer: &Viewer,
    patch: Map<String, Value>,
    params: &ApplyParams,
) -> Result<(), FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let agent_options = patch.get("agent_options").filter(|v| !v.is_null()).cloned();
    if let Some(options) = &agent_options {
        check_agent_options(options, params.force)?;
    }
    let mut settings: Map<String, Value> = patch
        .into_iter()
        .filter(|(key, _)| key != "agent_options")
        .collect();
    // Settings the server decides, not the document.
    settings.remove("license");
    settings.remove("logging");
    if params.dry_run {
        return Ok(());
    }
    let now = flotilla_engine::unix_now();
    if !settings.is_empty() {
        let mut stored = state
            .admin
            .app_settings()
            .await?
            .unwrap_or_else(|| json!({}));
        merge(&mut stored, &Value::Object(settings));
        state.admin.set_app_settings(&stored, now).await?;
    }
    if let Some(options) = &agent_options {
        state.admin.set_agent_options(None, options, now).await?;
        reload_agent_configs(state).await?;
        super::record_activity(
            state,
            Some(viewer.user.id),
            "edited_agent_options",
            json!({ "global": true, "team_id": null, "team_name": null }),
            now,
        )
        .await;
    }
    Ok(())
}

/// `PATCH /config` (`?force`, `?dry_run`): any subset of the settings; answers the whole
/// settings document.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(patch): FleetJson<Map<String, Value>>,
) -> Result<Response, FleetError> {
    apply_config(&state, &viewer, patch, &params).await?;
    Ok(ok(&config_json(&state, &viewer).await?))
}

/// Stores a team's agent options (after the checks), or only checks them on a dry run.
pub async fn apply_team_agent_options(
    state: &AppState,
    viewer: &Viewer,
    team: TeamId,
    options: &Value,
    params: &ApplyParams,
) -> Result<(), FleetError> {
    Viewer::require(viewer.can_write(Some(team)))?;
    if !options.is_null() {
        check_agent_options(options, params.force)?;
    }
    let existing = state
        .admin
        .team(team)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("team {team} not found")))?;
    if params.dry_run {
        return Ok(());
    }
    let now = flotilla_engine::unix_now();
    state
        .admin
        .set_agent_options(Some(team), options, now)
        .await?;
    reload_agent_configs(state).await?;
    super::record_activity(
        state,
        Some(viewer.user.id),
        "edited_agent_options",
        json!({ "global": false, "team_id": team.0, "team_name": existing.name }),
        now,
    )
    .await;
    Ok(())
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
    apply_team_agent_options(&state, &viewer, TeamId(id), &options, &params).await?;
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
    let query = super::queries::readable(&state, &viewer, id).await?;
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
    let query = super::queries::readable(&state, &viewer, parse_query_id(&query)?).await?;
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

/// The routes of settings, agent options, query reports and specs.
pub fn routes() -> axum::Router<SharedState> {
    use super::specs;
    use axum::routing::{get as read, post};
    axum::Router::new()
        .route("/config", read(get).patch(modify))
        .route("/teams/{id}/agent_options", post(team_agent_options))
        .route("/queries/{id}/report", read(query_report))
        .route("/hosts/{id}/queries/{query_id}", read(host_query_report))
        .route(
            "/spec/queries",
            read(specs::get_queries).post(specs::apply_queries),
        )
        .route("/spec/queries/{name}", read(specs::get_query))
        .route(
            "/spec/labels",
            read(specs::get_labels).post(specs::apply_labels),
        )
        .route("/spec/labels/{name}", read(specs::get_label))
        .route(
            "/spec/teams",
            read(specs::get_teams).post(specs::apply_teams),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_key_by_key() {
        let mut target = json!({"org_info": {"org_name": "a", "contact_url": "x"}, "features": {}});
        merge(
            &mut target,
            &json!({"org_info": {"org_name": "b"}, "server_settings": {"server_url": "u"}}),
        );
        assert_eq!(
            target,
            json!({
                "org_info": {"org_name": "b", "contact_url": "x"},
                "features": {},
                "server_settings": {"server_url": "u"},
            })
        );
    }
}
