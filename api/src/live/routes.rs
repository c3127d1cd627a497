//! Fleet's live-query endpoints: `POST /queries/run`, `/queries/run_by_identifiers` (alias
//! `run_by_names`), the synchronous `POST /queries/{id}/run`, `POST /hosts/{id}/query`,
//! `POST /hosts/identifier/{identifier}/query`, and the results websocket.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use flotilla_engine::campaign::CampaignEvent;
use flotilla_engine::store::TargetKind;
use flotilla_engine::{CampaignError, HostId, TeamId};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::socket::{SendTimeout, SessionUser, run_session};
use super::wire;
use crate::fleet::error::{FleetError, FleetJson, FleetPath};
use crate::service::Viewer;
use crate::service::live::{Runnable, Selection};
use crate::state::SharedState;
use flotilla_storage::admin::LabelId;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/queries/run", post(run))
        .route("/queries/run_by_identifiers", post(run_by_identifiers))
        .route("/queries/run_by_names", post(run_by_identifiers))
        .route("/queries/{id_or_name}/run", post(run_saved_on_hosts))
        .route("/hosts/{id}/query", post(query_host))
        .route(
            "/hosts/identifier/{identifier}/query",
            post(query_host_by_identifier),
        )
        .route("/results/websocket", any(websocket))
}

impl From<CampaignError> for FleetError {
    fn from(error: CampaignError) -> Self {
        match &error {
            CampaignError::TooMany { .. } => FleetError::TooMany {
                reason: error.to_string(),
                retry_after_secs: 10,
            },
            CampaignError::NoTargets => FleetError::BadRequest("no hosts targeted".into()),
            CampaignError::NotFound(id) => FleetError::NotFound(format!("campaign {id}")),
            CampaignError::Unavailable(why) => FleetError::Unavailable(why.clone()),
            CampaignError::RelayUnavailable => FleetError::ServiceDown(error.to_string()),
        }
    }
}

#[derive(Deserialize, Default)]
struct Selected {
    #[serde(default)]
    hosts: Vec<u64>,
    #[serde(default)]
    labels: Vec<u64>,
    #[serde(default)]
    teams: Vec<u64>,
}

#[derive(Deserialize)]
struct RunRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    query_id: Option<u64>,
    #[serde(default)]
    selected: Selected,
}

#[derive(Deserialize, Default)]
struct SelectedByIdentifiers {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct RunByIdentifiersRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    query_id: Option<u64>,
    #[serde(default)]
    selected: SelectedByIdentifiers,
}

fn campaign_response(
    viewer: &Viewer,
    runnable: &Runnable,
    started: &flotilla_engine::campaigns::StartedCampaign,
) -> Response {
    Json(json!({
        "campaign": wire::campaign(
            started.id.0,
            runnable.query_id,
            Some(viewer.user.id.0),
            flotilla_engine::unix_now(),
            &started.totals,
        )
    }))
    .into_response()
}

/// `POST /queries/run`: hosts, labels and teams by id.
async fn run(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(request): FleetJson<RunRequest>,
) -> Result<Response, FleetError> {
    let selected = request.selected;
    let selection = Selection {
        hosts: selected.hosts.into_iter().map(HostId).collect(),
        labels: selected.labels.into_iter().map(LabelId).collect(),
        teams: selected.teams.into_iter().map(TeamId).collect(),
    };
    let (runnable, started) = state
        .services
        .live
        .run(&viewer, request.query, request.query_id, selection)
        .await?;
    Ok(campaign_response(&viewer, &runnable, &started))
}

/// `POST /queries/run_by_identifiers`: hostnames, UUIDs or serials, and label names.
async fn run_by_identifiers(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(request): FleetJson<RunByIdentifiersRequest>,
) -> Result<Response, FleetError> {
    let selected = request.selected;
    let (runnable, started) = state
        .services
        .live
        .run_by_identifiers(
            &viewer,
            request.query,
            request.query_id,
            &selected.hosts,
            &selected.labels,
        )
        .await?;
    Ok(campaign_response(&viewer, &runnable, &started))
}

/// One host's answer as the synchronous endpoints report it.
struct Answer {
    rows: Value,
    error: Option<String>,
}

/// Starts a campaign and waits for its answers until every online target answered or the
/// synchronous timeout; then stops it. Returns the answers by host.
async fn run_and_wait(
    state: &SharedState,
    viewer: &Viewer,
    runnable: &Runnable,
    targets: Vec<HostId>,
) -> Result<(usize, Vec<(HostId, Answer)>), FleetError> {
    let record = targets.iter().map(|h| (TargetKind::Host, h.0)).collect();
    let timeout = state.live_query_sync_timeout;
    let started = state
        .services
        .live
        .start(
            viewer,
            runnable,
            targets,
            record,
            Some(timeout + Duration::from_secs(5)),
        )
        .await?;
    let mut subscription = state.campaigns.subscribe(started.id).await?;
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, subscription.next()).await {
            Ok(Some(CampaignEvent::Result(event))) => {
                let answer = &event.result.answer;
                let rows = wire::decorated_rows(
                    &answer.rows,
                    &event.result.hostname,
                    &event.result.hostname,
                );
                answers.push((
                    event.result.host,
                    Answer {
                        rows: Value::Array(rows),
                        error: answer.error.as_deref().map(str::to_owned),
                    },
                ));
            }
            Ok(Some(CampaignEvent::Status(progress))) if progress.finished => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    state.campaigns.stop(started.id);
    Ok((started.totals.count, answers))
}

#[derive(Deserialize)]
struct HostIds {
    #[serde(default)]
    host_ids: Vec<u64>,
}

/// `POST /queries/{id}/run`: a saved query on the given hosts, answered in one response.
async fn run_saved_on_hosts(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(query_id): FleetPath<u64>,
    FleetJson(request): FleetJson<HostIds>,
) -> Result<Response, FleetError> {
    if request.host_ids.is_empty() {
        return Err(FleetError::BadRequest("host_ids are required".into()));
    }
    let runnable = state
        .services
        .live
        .runnable(&viewer, None, Some(query_id))
        .await?;
    let hosts: BTreeSet<HostId> = request.host_ids.iter().map(|&h| HostId(h)).collect();
    let targets = state.services.live.permitted(&viewer, &runnable, hosts);
    let (targeted, answers) = run_and_wait(&state, &viewer, &runnable, targets).await?;
    let results: Vec<Value> = answers
        .iter()
        .map(
            |(host, answer)| json!({"host_id": host.0, "rows": answer.rows, "error": answer.error}),
        )
        .collect();
    Ok(Json(json!({
        "query_id": query_id,
        "targeted_host_count": targeted,
        "responded_host_count": answers.len(),
        "results": results,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct HostQuery {
    #[serde(default)]
    query: Option<String>,
}

async fn query_one_host(
    state: SharedState,
    viewer: Viewer,
    host: HostId,
    query: Option<String>,
) -> Result<Response, FleetError> {
    let sql = query
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| FleetError::BadRequest("query is required".into()))?;
    let runnable = Runnable {
        sql: sql.clone(),
        query_id: None,
        query_name: None,
        observer_can_run: false,
    };
    let Some((record, _)) = state.hosts.record(host) else {
        return Err(FleetError::BadRequest(format!(
            "host not found: {}",
            host.0
        )));
    };
    if !viewer.can_read(record.team) {
        return Err(FleetError::BadRequest(format!(
            "host not found: {}",
            host.0
        )));
    }
    // Seeing a host is not running SQL on it: ad-hoc SQL takes a role that runs any query on
    // the host's team (observers run only saved queries marked `observer_can_run`).
    Viewer::require(viewer.can_run_queries(record.team, runnable.observer_can_run))?;
    if !state.hosts.is_online(host, flotilla_engine::unix_now()) {
        return Ok(
            Json(json!({"host_id": host.0, "query": sql, "status": "offline"})).into_response(),
        );
    }
    let (_, answers) = run_and_wait(&state, &viewer, &runnable, vec![host]).await?;
    let mut body = json!({"host_id": host.0, "query": sql, "status": "online"});
    match answers.into_iter().next() {
        Some((_, answer)) => {
            body["rows"] = answer.rows;
            if let Some(error) = answer.error {
                body["error"] = json!(error);
            }
        }
        None => {
            body["rows"] = json!([]);
            body["error"] = json!("timeout waiting for results");
        }
    }
    Ok(Json(body).into_response())
}

/// `POST /hosts/{id}/query`: ad-hoc SQL on one host, answered in one response.
async fn query_host(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetJson(request): FleetJson<HostQuery>,
) -> Result<Response, FleetError> {
    query_one_host(state, viewer, HostId(id), request.query).await
}

/// `POST /hosts/identifier/{identifier}/query`.
async fn query_host_by_identifier(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(identifier): FleetPath<String>,
    FleetJson(request): FleetJson<HostQuery>,
) -> Result<Response, FleetError> {
    let hosts = state
        .reads
        .hosts
        .host_ids_by_identifiers(std::slice::from_ref(&identifier))
        .await?;
    let Some(&host) = hosts.first() else {
        return Err(FleetError::BadRequest(format!(
            "host not found: {identifier}"
        )));
    };
    query_one_host(state, viewer, host, request.query).await
}

/// `GET /results/websocket`: upgrades, then the session authenticates in-band.
async fn websocket(State(state): State<SharedState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .on_upgrade(move |socket| async move {
            let (tx, rx) = socket.split();
            let campaigns = state.campaigns.clone();
            let timeout = SendTimeout(state.websocket_send_timeout);
            run_session(tx, rx, campaigns, timeout, |token| async move {
                let viewer = state
                    .services
                    .sessions
                    .viewer_for_token(&token)
                    .await
                    .ok()?;
                Some(SessionUser {
                    id: viewer.user.id.0,
                    is_admin: viewer.is_global_admin(),
                })
            })
            .await
        })
        .into_response()
}
