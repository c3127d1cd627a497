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
use flotilla_engine::campaigns::NewCampaign;
use flotilla_engine::store::{CampaignRecord, TargetKind};
use flotilla_engine::{CampaignError, HostId, TeamId};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::socket::{SessionUser, run_session};
use super::wire;
use crate::fleet::auth::Viewer;
use crate::fleet::error::{FleetError, FleetJson, FleetPath};
use crate::state::SharedState;

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

/// The SQL to run and the saved query it comes from, checked against the viewer's rights.
struct Runnable {
    sql: String,
    query_id: Option<u64>,
    query_name: Option<String>,
    observer_can_run: bool,
}

/// A saved query must be one the viewer may read (a team's query is not another team's to run);
/// which hosts it may then run on is decided per host by [`permitted`].
async fn runnable(
    state: &SharedState,
    viewer: &Viewer,
    query: Option<String>,
    query_id: Option<u64>,
) -> Result<Runnable, FleetError> {
    if let Some(id) = query_id {
        let saved = state
            .admin
            .get_query(flotilla_storage::admin::QueryId(id))
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("query {id}")))?;
        Viewer::require(crate::fleet::queries::can_read(viewer, saved.team))?;
        return Ok(Runnable {
            sql: saved.fields.query,
            query_id: Some(id),
            query_name: Some(saved.fields.name),
            observer_can_run: saved.fields.observer_can_run,
        });
    }
    let sql = query
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| FleetError::Validation {
            name: "query".into(),
            reason: "one of query or query_id must be specified".into(),
        })?;
    Ok(Runnable {
        sql,
        query_id: None,
        query_name: None,
        observer_can_run: false,
    })
}

/// Keeps the hosts the viewer may run this query on.
fn permitted(
    state: &SharedState,
    viewer: &Viewer,
    runnable: &Runnable,
    hosts: BTreeSet<HostId>,
) -> Vec<HostId> {
    hosts
        .into_iter()
        .filter(
            |&host| match state.hosts.presence(host, flotilla_engine::unix_now()) {
                Some(presence) => viewer.can_run_queries(presence.team, runnable.observer_can_run),
                None => false,
            },
        )
        .collect()
}

async fn start(
    state: &SharedState,
    viewer: &Viewer,
    runnable: &Runnable,
    targets: Vec<HostId>,
    selected: Vec<(TargetKind, u64)>,
    deadline: Option<Duration>,
) -> Result<flotilla_engine::campaigns::StartedCampaign, FleetError> {
    if targets.is_empty() {
        // Either nothing was selected, or nothing the viewer may run on.
        let any_runnable = viewer.can_run_queries(None, runnable.observer_can_run);
        return Err(if any_runnable {
            FleetError::BadRequest("no hosts targeted".into())
        } else {
            FleetError::Forbidden
        });
    }
    let now = flotilla_engine::unix_now();
    let started = state
        .campaigns
        .start(NewCampaign {
            record: CampaignRecord {
                sql: runnable.sql.clone(),
                query_id: runnable.query_id,
                user_id: Some(viewer.user.id.0),
                selected,
                created_at: now,
            },
            targets,
            deadline,
        })
        .await?;
    let mut details = json!({"targets_count": started.totals.count, "query_sql": runnable.sql});
    if let Some(name) = &runnable.query_name {
        details["query_name"] = json!(name);
    }
    crate::fleet::record_activity(state, Some(viewer.user.id), "live_query", details, now).await;
    Ok(started)
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
    let runnable = runnable(&state, &viewer, request.query, request.query_id).await?;
    let selected = request.selected;
    let mut hosts: BTreeSet<HostId> = selected.hosts.iter().map(|&h| HostId(h)).collect();
    let labels: Vec<_> = selected
        .labels
        .iter()
        .map(|&l| flotilla_storage::admin::LabelId(l))
        .collect();
    let teams: Vec<TeamId> = selected.teams.iter().map(|&t| TeamId(t)).collect();
    hosts.extend(resolve_groups(&state, &labels, &teams).await?);
    let mut record: Vec<(TargetKind, u64)> = Vec::new();
    record.extend(selected.hosts.iter().map(|&h| (TargetKind::Host, h)));
    record.extend(selected.labels.iter().map(|&l| (TargetKind::Label, l)));
    record.extend(selected.teams.iter().map(|&t| (TargetKind::Team, t)));
    let targets = permitted(&state, &viewer, &runnable, hosts);
    let started = start(&state, &viewer, &runnable, targets, record, None).await?;
    Ok(campaign_response(&viewer, &runnable, &started))
}

/// Hosts in the selected labels and teams: labels OR-ed, teams OR-ed, and the two groups
/// AND-ed when both are given (Fleet's rule).
async fn resolve_groups(
    state: &SharedState,
    labels: &[flotilla_storage::admin::LabelId],
    teams: &[TeamId],
) -> Result<BTreeSet<HostId>, FleetError> {
    let in_labels: Option<BTreeSet<HostId>> = if labels.is_empty() {
        None
    } else {
        Some(
            state
                .admin
                .host_ids_in_labels(labels)
                .await?
                .into_iter()
                .collect(),
        )
    };
    let in_teams: Option<BTreeSet<HostId>> = if teams.is_empty() {
        None
    } else {
        Some(
            state
                .admin
                .host_ids_in_teams(teams)
                .await?
                .into_iter()
                .collect(),
        )
    };
    Ok(match (in_labels, in_teams) {
        (Some(l), Some(t)) => l.intersection(&t).copied().collect(),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => BTreeSet::new(),
    })
}

/// `POST /queries/run_by_identifiers`: hostnames, UUIDs or serials, and label names.
async fn run_by_identifiers(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(request): FleetJson<RunByIdentifiersRequest>,
) -> Result<Response, FleetError> {
    let runnable = runnable(&state, &viewer, request.query, request.query_id).await?;
    let selected = request.selected;
    let mut label_ids = Vec::with_capacity(selected.labels.len());
    let mut missing = Vec::new();
    for name in &selected.labels {
        match state.admin.label_by_name(name).await? {
            Some(label) => label_ids.push(label.id),
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(FleetError::BadRequest(format!(
            "Invalid label name(s): {}.",
            missing.join(", ")
        )));
    }
    let mut hosts: BTreeSet<HostId> = state
        .admin
        .host_ids_by_identifiers(&selected.hosts)
        .await?
        .into_iter()
        .collect();
    hosts.extend(resolve_groups(&state, &label_ids, &[]).await?);
    let mut record: Vec<(TargetKind, u64)> =
        hosts.iter().map(|h| (TargetKind::Host, h.0)).collect();
    record.extend(label_ids.iter().map(|l| (TargetKind::Label, l.0)));
    let targets = permitted(&state, &viewer, &runnable, hosts);
    let started = start(&state, &viewer, &runnable, targets, record, None).await?;
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
    let started = start(
        state,
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
    let runnable = runnable(&state, &viewer, None, Some(query_id)).await?;
    let hosts: BTreeSet<HostId> = request.host_ids.iter().map(|&h| HostId(h)).collect();
    let targets = permitted(&state, &viewer, &runnable, hosts);
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
        .admin
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
            run_session(tx, rx, campaigns, |token| async move {
                let viewer = crate::fleet::auth::viewer_for_token(&state, &token)
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
