//! Saved queries: `/queries`, `/queries/{id}`, deletion by name, id or many. Who may read and
//! write them, and what a change does, is [`crate::service::queries`]'s.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{QueryFields, QueryId, SavedQuery};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::service::Viewer;
use crate::service::queries::{QueryTarget, can_read};
use crate::state::SharedState;

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
        .reads
        .queries
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
    let query = state.services.queries.create(&viewer, team, fields).await?;
    Ok(query_body(&query))
}

fn parse_id(text: &str) -> Result<QueryId, FleetError> {
    text.parse()
        .map(QueryId)
        .map_err(|_| FleetError::BadRequest(format!("`{text}` is not a query id")))
}

/// `GET /queries/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
) -> Result<Response, FleetError> {
    let query = state
        .services
        .queries
        .readable(&viewer, parse_id(&id)?)
        .await?;
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

/// `field = value` where a value was given.
fn replace<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// `PATCH /queries/{id}`: any subset of the fields.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
    FleetJson(body): FleetJson<ModifyQueryBody>,
) -> Result<Response, FleetError> {
    let edit = |fields: &mut QueryFields| {
        let ModifyQueryBody {
            name,
            description,
            query,
            interval,
            platform,
            min_osquery_version,
            automations_enabled,
            logging,
            observer_can_run,
            discard_data,
        } = body;
        if let Some(name) = name {
            fields.name = name.trim().to_owned();
        }
        replace(&mut fields.description, description);
        replace(&mut fields.query, query);
        replace(&mut fields.interval, interval);
        replace(&mut fields.platform, platform);
        replace(&mut fields.min_osquery_version, min_osquery_version);
        replace(&mut fields.automations_enabled, automations_enabled);
        replace(&mut fields.logging, logging);
        replace(&mut fields.observer_can_run, observer_can_run);
        replace(&mut fields.discard_data, discard_data);
    };
    let updated = state
        .services
        .queries
        .update(&viewer, parse_id(&id)?, edit)
        .await?;
    Ok(query_body(&updated))
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
    state
        .services
        .queries
        .delete(&viewer, QueryTarget::Name(team, name))
        .await?;
    Ok(ok(&json!({})))
}

/// `DELETE /queries/id/{id}`.
pub async fn delete_by_id(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state
        .services
        .queries
        .delete(&viewer, QueryTarget::Id(QueryId(id)))
        .await?;
    Ok(ok(&json!({})))
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
    let ids: Vec<QueryId> = body.ids.iter().copied().map(QueryId).collect();
    let deleted = state.services.queries.delete_many(&viewer, &ids).await?;
    Ok(ok(&json!({ "deleted": deleted })))
}
