//! Labels: the builtin ones (members by platform), manual ones (hosts named by identifier) and
//! dynamic ones (a query whose answers the engine records). Builtins cannot be changed.
//! Any user with a role reads labels, with host counts among the hosts they can see; global
//! admins and maintainers write them.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::HostId;
use flotilla_storage::admin::{Label, LabelChanges, LabelId, LabelMembership, LabelType, NewLabel};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Viewer;
use super::error::{FleetError, FleetJson, FleetPath, ok};
use super::rfc3339;
use crate::state::{AppState, SharedState};

/// Platforms a dynamic label can be limited to (empty: all).
pub(crate) const PLATFORMS: &[&str] = &[
    "", "darwin", "windows", "ubuntu", "centos", "linux", "chrome",
];

#[derive(Serialize)]
pub struct LabelJson {
    created_at: String,
    updated_at: String,
    id: u64,
    name: String,
    description: String,
    query: String,
    platform: String,
    label_type: &'static str,
    label_membership_type: &'static str,
    display_text: String,
    count: u64,
    host_count: u64,
    host_ids: Option<Vec<u64>>,
}

impl From<&Label> for LabelJson {
    fn from(label: &Label) -> Self {
        LabelJson {
            created_at: rfc3339(label.created_at),
            updated_at: rfc3339(label.updated_at),
            id: label.id.0,
            name: label.name.clone(),
            description: label.description.clone(),
            query: label.query.clone(),
            platform: label.platform.clone(),
            label_type: label.label_type.as_str(),
            label_membership_type: label.membership.as_str(),
            display_text: label.name.clone(),
            count: label.host_count,
            host_count: label.host_count,
            host_ids: None,
        }
    }
}

/// The ids of hosts named by identifier (hostname, uuid, serial, osquery host id); 422 naming
/// any that match no host.
pub(crate) async fn resolve_hosts(
    state: &AppState,
    identifiers: &[String],
) -> Result<Vec<HostId>, FleetError> {
    let mut ids = Vec::with_capacity(identifiers.len());
    let mut unknown = Vec::new();
    for identifier in identifiers {
        match state.admin.host_by_identifier(identifier.trim()).await? {
            Some(host) => ids.push(host.id),
            None => unknown.push(identifier.as_str()),
        }
    }
    if !unknown.is_empty() {
        return Err(FleetError::validation(
            "hosts",
            format!("no host matches: {}", unknown.join(", ")),
        ));
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn label_body(label: &Label, host_ids: Option<Vec<HostId>>) -> Response {
    let mut json = LabelJson::from(label);
    json.host_ids = host_ids.map(|ids| ids.into_iter().map(|h| h.0).collect());
    ok(&json!({ "label": json }))
}

#[derive(Deserialize)]
pub struct CreateLabelBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    query: Option<String>,
    #[serde(default)]
    platform: String,
    hosts: Option<Vec<String>>,
}

/// `POST /labels`: `query` makes a dynamic label, `hosts` a manual one.
pub async fn create(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreateLabelBody>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    let query = body.query.unwrap_or_default();
    let (membership, hosts) = match (query.trim().is_empty(), body.hosts) {
        (false, Some(_)) => {
            return Err(FleetError::validation(
                "query",
                "a label has either a query (dynamic) or hosts (manual), not both",
            ));
        }
        (false, None) => (LabelMembership::Dynamic, Vec::new()),
        (true, hosts) => (
            LabelMembership::Manual,
            resolve_hosts(&state, &hosts.unwrap_or_default()).await?,
        ),
    };
    if !PLATFORMS.contains(&body.platform.as_str()) {
        return Err(FleetError::validation(
            "platform",
            format!("use one of: {}", PLATFORMS[1..].join(", ")),
        ));
    }
    let new = NewLabel {
        name: name.to_owned(),
        description: body.description,
        query,
        platform: body.platform,
        membership,
        hosts,
    };
    let now = flotilla_engine::unix_now();
    let label = state.admin.create_label(&new, now).await?;
    if membership == LabelMembership::Dynamic {
        publish_label_queries(&state, false).await?;
    }
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "created_label",
        json!({ "label_id": label.id.0, "label_name": label.name }),
        now,
    )
    .await;
    let hosts = (membership == LabelMembership::Manual).then_some(new.hosts);
    Ok(label_body(&label, hosts))
}

/// `GET /labels`.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let labels: Vec<LabelJson> = state
        .admin
        .labels(&viewer.host_scope())
        .await?
        .iter()
        .map(LabelJson::from)
        .collect();
    Ok(ok(&json!({ "labels": labels })))
}

/// `GET /labels/summary`: ids, names and types only.
pub async fn summary(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let labels: Vec<serde_json::Value> = state
        .admin
        .labels(&viewer.host_scope())
        .await?
        .iter()
        .map(|l| {
            json!({
                "id": l.id.0,
                "name": l.name,
                "description": l.description,
                "label_type": l.label_type.as_str(),
            })
        })
        .collect();
    Ok(ok(&json!({ "labels": labels })))
}

pub(crate) fn parse_id(text: &str) -> Result<LabelId, FleetError> {
    text.parse()
        .map(LabelId)
        .map_err(|_| FleetError::BadRequest(format!("`{text}` is not a label id")))
}

/// The label with this id, if the viewer may see it.
pub(crate) async fn visible_label(
    state: &AppState,
    viewer: &Viewer,
    id: LabelId,
) -> Result<Label, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    state
        .admin
        .label(id, &viewer.host_scope())
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("label {id} not found")))
}

async fn manual_hosts(state: &AppState, label: &Label) -> Result<Option<Vec<HostId>>, FleetError> {
    if label.membership != LabelMembership::Manual {
        return Ok(None);
    }
    Ok(Some(state.admin.manual_label_hosts(label.id).await?))
}

/// `GET /labels/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
) -> Result<Response, FleetError> {
    let label = visible_label(&state, &viewer, parse_id(&id)?).await?;
    let hosts = manual_hosts(&state, &label).await?;
    Ok(label_body(&label, hosts))
}

#[derive(Deserialize)]
pub struct ModifyLabelBody {
    name: Option<String>,
    description: Option<String>,
    hosts: Option<Vec<String>>,
}

fn builtin_refused(label: &Label, verb: &str) -> FleetError {
    FleetError::validation(
        "label_id",
        format!("built-in label `{}` can't be {verb}", label.name),
    )
}

/// `PATCH /labels/{id}`: name, description, and a manual label's hosts. A label's query and
/// platform cannot change.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
    FleetJson(body): FleetJson<ModifyLabelBody>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    let label = visible_label(&state, &viewer, parse_id(&id)?).await?;
    if label.label_type == LabelType::Builtin {
        return Err(builtin_refused(&label, "modified"));
    }
    let name = body.name.map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    let hosts = match body.hosts {
        Some(identifiers) => Some(resolve_hosts(&state, &identifiers).await?),
        None => None,
    };
    let changes = LabelChanges {
        name,
        description: body.description,
        hosts,
    };
    let label = state
        .admin
        .update_label(label.id, &changes, flotilla_engine::unix_now())
        .await?;
    let hosts = manual_hosts(&state, &label).await?;
    Ok(label_body(&label, hosts))
}

async fn delete_label(
    state: &AppState,
    viewer: &Viewer,
    label: Label,
) -> Result<Response, FleetError> {
    if label.label_type == LabelType::Builtin {
        return Err(builtin_refused(&label, "deleted"));
    }
    let deleted = state
        .admin
        .delete_label(label.id)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("label {} not found", label.name)))?;
    publish_label_queries(state, false).await?;
    super::record_activity(
        state,
        Some(viewer.user.id),
        "deleted_label",
        json!({ "label_id": deleted.id.0, "label_name": deleted.name }),
        flotilla_engine::unix_now(),
    )
    .await;
    Ok(ok(&json!({})))
}

/// `DELETE /labels/{name}`.
pub async fn delete_by_name(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(name): FleetPath<String>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    let label = state
        .admin
        .label_by_name(&name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("label {name} not found")))?;
    delete_label(&state, &viewer, label).await
}

/// `DELETE /labels/id/{id}`.
pub async fn delete_by_id(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    let label = visible_label(&state, &viewer, LabelId(id)).await?;
    delete_label(&state, &viewer, label).await
}

/// Hands the stored dynamic labels to the engine, which sends them to hosts as
/// `fleet_label_query_<id>`. At start (`initial`) hosts keep their own label schedule; after a
/// change every host runs the new set at its next check-in.
/// Hands the dynamic-label queries to the engine; after an admin's change (`initial` false)
/// the other nodes are told to do the same.
pub async fn publish_label_queries(state: &AppState, initial: bool) -> Result<(), FleetError> {
    reload_label_queries(state, initial).await?;
    if !initial {
        state
            .hosts
            .announce_changed(flotilla_engine::relay::Topic::Labels);
    }
    Ok(())
}

/// Hands the dynamic-label queries as stored to the engine.
pub async fn reload_label_queries(state: &AppState, initial: bool) -> Result<(), FleetError> {
    let queries = state
        .admin
        .dynamic_label_queries()
        .await?
        .into_iter()
        .map(|q| flotilla_engine::labels::LabelQuery::new(q.id.0, &q.query, &q.platform))
        .collect();
    if initial {
        state.hosts.load_label_queries(queries);
    } else {
        state.hosts.set_label_queries(queries);
    }
    Ok(())
}
