//! Saved queries, global or per team. Anyone with a role reads global queries (teams inherit
//! them); a team's queries are read by that team's users. Admins and maintainers write, for
//! their scope.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{QueryFields, QueryId, SavedQuery};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Viewer;
use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::state::{AppState, SharedState};

const LOGGING: &[&str] = &["snapshot", "differential", "differential_ignore_removals"];
const PLATFORMS: &[&str] = &["darwin", "linux", "windows", "chrome"];

#[derive(Serialize)]
struct QueryJson {
    created_at: String,
    updated_at: String,
    id: u64,
    name: String,
    description: String,
    query: String,
    team_id: Option<u64>,
    interval: u32,
    platform: String,
    min_osquery_version: String,
    automations_enabled: bool,
    logging: String,
    saved: bool,
    observer_can_run: bool,
    discard_data: bool,
    author_id: Option<u64>,
    author_name: String,
    author_email: String,
    packs: [(); 0],
    stats: serde_json::Value,
}

impl From<&SavedQuery> for QueryJson {
    fn from(q: &SavedQuery) -> Self {
        QueryJson {
            created_at: rfc3339(q.created_at),
            updated_at: rfc3339(q.updated_at),
            id: q.id.0,
            name: q.fields.name.clone(),
            description: q.fields.description.clone(),
            query: q.fields.query.clone(),
            team_id: q.team.map(|t| t.0),
            interval: q.fields.interval,
            platform: q.fields.platform.clone(),
            min_osquery_version: q.fields.min_osquery_version.clone(),
            automations_enabled: q.fields.automations_enabled,
            logging: q.fields.logging.clone(),
            saved: true,
            observer_can_run: q.fields.observer_can_run,
            discard_data: q.fields.discard_data,
            author_id: q.author.map(|a| a.0),
            author_name: q.author_name.clone(),
            author_email: q.author_email.clone(),
            packs: [],
            stats: json!({
                "system_time_p50": null,
                "system_time_p95": null,
                "user_time_p50": null,
                "user_time_p95": null,
                "total_executions": 0,
            }),
        }
    }
}

fn query_body(query: &SavedQuery) -> Response {
    ok(&json!({ "query": QueryJson::from(query) }))
}

/// Whether `viewer` may read queries of `team` (`None`: global ones, inherited by every team).
pub(crate) fn can_read(viewer: &Viewer, team: Option<TeamId>) -> bool {
    match team {
        None => viewer.has_any_role(),
        Some(_) => viewer.can_read(team),
    }
}

/// Every field checked: name and SQL present, logging and platform among Fleet's values.
pub(crate) fn check(fields: &QueryFields) -> Result<(), FleetError> {
    if fields.name.trim().is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    if fields.query.trim().is_empty() {
        return Err(FleetError::validation("query", "cannot be empty"));
    }
    if !LOGGING.contains(&fields.logging.as_str()) {
        return Err(FleetError::validation(
            "logging",
            format!("use one of: {}", LOGGING.join(", ")),
        ));
    }
    let unknown = fields
        .platform
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find(|p| !PLATFORMS.contains(p));
    if let Some(platform) = unknown {
        return Err(FleetError::validation(
            "platform",
            format!(
                "`{platform}` is not a platform; use a comma-separated list of: {}",
                PLATFORMS.join(", ")
            ),
        ));
    }
    Ok(())
}

async fn team_name(state: &AppState, team: Option<TeamId>) -> Result<Option<String>, FleetError> {
    Ok(match team {
        Some(team) => state.admin.team(team).await?.map(|t| t.name),
        None => None,
    })
}

#[derive(Deserialize)]
pub struct ListQueriesParams {
    team_id: Option<u64>,
    query: Option<String>,
}

/// `GET /queries` (`team_id`, `query`): global queries, or a team's.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ListQueriesParams>,
) -> Result<Response, FleetError> {
    let team = params.team_id.filter(|&t| t != 0).map(TeamId);
    Viewer::require(can_read(&viewer, team))?;
    let queries: Vec<QueryJson> = state
        .admin
        .queries(team, params.query.as_deref())
        .await?
        .iter()
        .map(QueryJson::from)
        .collect();
    Ok(ok(&json!({ "queries": queries })))
}

#[derive(Deserialize)]
pub struct CreateQueryBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    query: String,
    team_id: Option<u64>,
    #[serde(default)]
    interval: u32,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    min_osquery_version: String,
    #[serde(default)]
    automations_enabled: bool,
    logging: Option<String>,
    #[serde(default)]
    observer_can_run: bool,
    #[serde(default)]
    discard_data: bool,
}

/// `POST /queries`.
pub async fn create(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreateQueryBody>,
) -> Result<Response, FleetError> {
    let team = body.team_id.filter(|&t| t != 0).map(TeamId);
    Viewer::require(viewer.can_write(team))?;
    let fields = QueryFields {
        name: body.name.trim().to_owned(),
        description: body.description,
        query: body.query,
        interval: body.interval,
        platform: body.platform,
        min_osquery_version: body.min_osquery_version,
        automations_enabled: body.automations_enabled,
        logging: body
            .logging
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "snapshot".into()),
        observer_can_run: body.observer_can_run,
        discard_data: body.discard_data,
    };
    check(&fields)?;
    let now = flotilla_engine::unix_now();
    let query = state
        .admin
        .create_query(team, &fields, Some(viewer.user.id), now)
        .await?;
    schedule_changed(&state, None).await?;
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "created_saved_query",
        json!({
            "query_id": query.id.0,
            "query_name": query.fields.name,
            "team_id": team.map(|t| t.0),
            "team_name": team_name(&state, team).await?,
        }),
        now,
    )
    .await;
    Ok(query_body(&query))
}

/// After a saved query changed: hosts pull the new schedule, and a report whose rows no
/// longer describe the query (`forget_report`) is dropped, as Fleet does when the SQL changes,
/// data is discarded or logging leaves snapshot.
pub(crate) async fn schedule_changed(
    state: &AppState,
    forget_report: Option<QueryId>,
) -> Result<(), FleetError> {
    if let Some(query) = forget_report {
        state.reports.forget(query);
        state.admin.delete_report(query).await?;
    }
    super::config::reload_agent_configs(state).await
}

fn parse_id(text: &str) -> Result<QueryId, FleetError> {
    text.parse()
        .map(QueryId)
        .map_err(|_| FleetError::BadRequest(format!("`{text}` is not a query id")))
}

/// The saved query with this id, if `viewer` may read it.
pub(crate) async fn readable(
    state: &AppState,
    viewer: &Viewer,
    id: QueryId,
) -> Result<SavedQuery, FleetError> {
    let query = state
        .admin
        .get_query(id)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("query {id} not found")))?;
    Viewer::require(can_read(viewer, query.team))?;
    Ok(query)
}

/// `GET /queries/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
) -> Result<Response, FleetError> {
    let query = readable(&state, &viewer, parse_id(&id)?).await?;
    Ok(query_body(&query))
}

#[derive(Deserialize)]
pub struct ModifyQueryBody {
    name: Option<String>,
    description: Option<String>,
    query: Option<String>,
    interval: Option<u32>,
    platform: Option<String>,
    min_osquery_version: Option<String>,
    automations_enabled: Option<bool>,
    logging: Option<String>,
    observer_can_run: Option<bool>,
    discard_data: Option<bool>,
}

/// `PATCH /queries/{id}`: any subset of the fields.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
    FleetJson(body): FleetJson<ModifyQueryBody>,
) -> Result<Response, FleetError> {
    let query = readable(&state, &viewer, parse_id(&id)?).await?;
    Viewer::require(viewer.can_write(query.team))?;
    let mut fields = query.fields.clone();
    if let Some(name) = body.name {
        fields.name = name.trim().to_owned();
    }
    fields.description = body.description.unwrap_or(fields.description);
    fields.query = body.query.unwrap_or(fields.query);
    fields.interval = body.interval.unwrap_or(fields.interval);
    fields.platform = body.platform.unwrap_or(fields.platform);
    fields.min_osquery_version = body
        .min_osquery_version
        .unwrap_or(fields.min_osquery_version);
    fields.automations_enabled = body
        .automations_enabled
        .unwrap_or(fields.automations_enabled);
    fields.logging = body.logging.unwrap_or(fields.logging);
    fields.observer_can_run = body.observer_can_run.unwrap_or(fields.observer_can_run);
    fields.discard_data = body.discard_data.unwrap_or(fields.discard_data);
    check(&fields)?;
    let now = flotilla_engine::unix_now();
    let updated = state.admin.update_query(query.id, &fields, now).await?;
    let report_invalid = updated.fields.query != query.fields.query
        || updated.fields.discard_data
        || updated.fields.logging != "snapshot";
    schedule_changed(&state, report_invalid.then_some(updated.id)).await?;
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "edited_saved_query",
        json!({
            "query_id": updated.id.0,
            "query_name": updated.fields.name,
            "team_id": updated.team.map(|t| t.0),
            "team_name": team_name(&state, updated.team).await?,
        }),
        now,
    )
    .await;
    Ok(query_body(&updated))
}

async fn delete_one(
    state: &AppState,
    viewer: &Viewer,
    query: SavedQuery,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(query.team))?;
    let deleted = state
        .admin
        .delete_query(query.id)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("query {} not found", query.id)))?;
    schedule_changed(state, Some(deleted.id)).await?;
    super::record_activity(
        state,
        Some(viewer.user.id),
        "deleted_saved_query",
        json!({
            "query_name": deleted.fields.name,
            "team_id": deleted.team.map(|t| t.0),
            "team_name": team_name(state, deleted.team).await?,
        }),
        flotilla_engine::unix_now(),
    )
    .await;
    Ok(ok(&json!({})))
}

#[derive(Deserialize, Default)]
pub struct TeamParam {
    team_id: Option<u64>,
}

/// `DELETE /queries/{name}`, the team in the query string or the body (`team_id`; none:
/// global).
pub async fn delete_by_name(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(name): FleetPath<String>,
    FleetQuery(params): FleetQuery<TeamParam>,
    FleetJson(body): FleetJson<TeamParam>,
) -> Result<Response, FleetError> {
    let team = params
        .team_id
        .or(body.team_id)
        .filter(|&t| t != 0)
        .map(TeamId);
    Viewer::require(viewer.can_write(team))?;
    let query = state
        .admin
        .query_by_name(team, &name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("query {name} not found")))?;
    delete_one(&state, &viewer, query).await
}

/// `DELETE /queries/id/{id}`.
pub async fn delete_by_id(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let query = readable(&state, &viewer, QueryId(id)).await?;
    delete_one(&state, &viewer, query).await
}

#[derive(Deserialize)]
pub struct DeleteManyBody {
    #[serde(default)]
    ids: Vec<u64>,
}

/// `POST /queries/delete` `{"ids":[…]}` → `{"deleted": n}`. All or nothing: one query the
/// viewer may not delete refuses the whole request.
pub async fn delete_many(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<DeleteManyBody>,
) -> Result<Response, FleetError> {
    let mut ids = Vec::with_capacity(body.ids.len());
    let mut teams = Vec::new();
    for &id in &body.ids {
        if let Some(query) = state.admin.get_query(QueryId(id)).await? {
            Viewer::require(viewer.can_write(query.team))?;
            ids.push(query.id);
            teams.push(query.team);
        }
    }
    let deleted = state.admin.delete_queries(&ids).await?;
    for &id in &ids {
        state.reports.forget(id);
    }
    if deleted > 0 {
        schedule_changed(&state, None).await?;
    }
    if deleted > 0 {
        let team = teams.first().copied().flatten();
        super::record_activity(
            &state,
            Some(viewer.user.id),
            "deleted_multiple_saved_query",
            json!({
                "query_ids": ids.iter().map(|q| q.0).collect::<Vec<_>>(),
                "team_id": team.map(|t| t.0),
                "team_name": team_name(&state, team).await?,
            }),
            flotilla_engine::unix_now(),
        )
        .await;
    }
    Ok(ok(&json!({ "deleted": deleted })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> QueryFields {
        QueryFields {
            name: "info".into(),
            description: String::new(),
            query: "SELECT 1;".into(),
            interval: 0,
            platform: String::new(),
            min_osquery_version: String::new(),
            automations_enabled: false,
            logging: "snapshot".into(),
            observer_can_run: false,
            discard_data: false,
        }
    }

    #[test]
    fn query_fields_are_checked() {
        assert!(check(&fields()).is_ok());
        let mut f = fields();
        f.platform = "darwin, linux".into();
        assert!(check(&f).is_ok());
        f.platform = "darwin,beos".into();
        assert!(check(&f).is_err());
        let mut f = fields();
        f.logging = "sometimes".into();
        assert!(check(&f).is_err());
        let mut f = fields();
        f.query = "  ".into();
        assert!(check(&f).is_err());
    }
}
