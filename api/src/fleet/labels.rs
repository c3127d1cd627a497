//! Labels: the builtin ones (members by platform), manual ones (hosts named by identifier) and
//! dynamic ones (a query whose answers the engine records). Builtins cannot be changed.
//! Any user with a role reads labels, with host counts among the hosts they can see; global
//! admins and maintainers write them.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::HostId;
use flotilla_storage::admin::{Label, LabelId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, ok};
use super::rfc3339;
use crate::service::Viewer;
use crate::service::labels::{LabelEdit, LabelRequest, LabelTarget};
use crate::state::SharedState;

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
    let request = LabelRequest {
        name: body.name,
        description: body.description,
        query: body.query,
        platform: body.platform,
        hosts: body.hosts,
    };
    let (label, hosts) = state.services.labels.create(&viewer, request).await?;
    Ok(label_body(&label, hosts))
}

/// `GET /labels`.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let labels: Vec<LabelJson> = state
        .reads
        .labels
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
        .reads
        .labels
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

/// `GET /labels/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
) -> Result<Response, FleetError> {
    let labels = &state.services.labels;
    let label = labels.visible(&viewer, parse_id(&id)?).await?;
    let hosts = labels.manual_hosts(&label).await?;
    Ok(label_body(&label, hosts))
}

#[derive(Deserialize)]
pub struct ModifyLabelBody {
    name: Option<String>,
    description: Option<String>,
    hosts: Option<Vec<String>>,
}

/// `PATCH /labels/{id}`: name, description, and a manual label's hosts. A label's query and
/// platform cannot change.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
    FleetJson(body): FleetJson<ModifyLabelBody>,
) -> Result<Response, FleetError> {
    let edit = LabelEdit {
        name: body.name,
        description: body.description,
        hosts: body.hosts,
    };
    let (label, hosts) = state
        .services
        .labels
        .update(&viewer, parse_id(&id)?, edit)
        .await?;
    Ok(label_body(&label, hosts))
}

/// `DELETE /labels/{name}`.
pub async fn delete_by_name(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(name): FleetPath<String>,
) -> Result<Response, FleetError> {
    state
        .services
        .labels
        .delete(&viewer, LabelTarget::Name(name))
        .await?;
    Ok(ok(&json!({})))
}

/// `DELETE /labels/id/{id}`.
pub async fn delete_by_id(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state
        .services
        .labels
        .delete(&viewer, LabelTarget::Id(LabelId(id)))
        .await?;
    Ok(ok(&json!({})))
}
