//! `GET /activities`: the audit log, newest first unless asked otherwise. Readable by users
//! with a global role.

use axum::extract::State;
use axum::response::Response;
use flotilla_storage::admin::{ACTIVITY_ORDER_KEYS, Activity, Page};
use serde::Serialize;
use serde_json::json;

use super::error::{FleetError, FleetQuery, ok};
use super::{ListParams, rfc3339};
use crate::service::Viewer;
use crate::state::SharedState;

#[derive(Serialize)]
struct ActivityJson {
    created_at: String,
    id: u64,
    actor_full_name: Option<String>,
    actor_id: Option<u64>,
    actor_gravatar: &'static str,
    actor_email: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    details: serde_json::Value,
    fleet_initiated: bool,
}

impl From<Activity> for ActivityJson {
    fn from(a: Activity) -> Self {
        ActivityJson {
            created_at: rfc3339(a.created_at),
            id: a.id,
            fleet_initiated: a.actor.is_none() && a.actor_email.is_none(),
            actor_full_name: a.actor_full_name,
            actor_id: a.actor.map(|u| u.0),
            actor_gravatar: "",
            actor_email: a.actor_email,
            kind: a.kind,
            details: a.details,
        }
    }
}

/// `GET /activities` (`page`, `per_page`, `order_key` = created_at, `order_direction` = desc).
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ListParams>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_read(None))?;
    let page = params.page(100)?;
    let order = params.order("created_at", true, ACTIVITY_ORDER_KEYS)?;
    // One more than the page holds tells whether there is a next page.
    let probe = Page {
        limit: page.limit.saturating_add(1),
        offset: page.offset,
    };
    let mut activities = state.reads.activities.activities(&order, probe).await?;
    let has_next = activities.len() as u64 > page.limit;
    activities.truncate(page.limit as usize);
    let activities: Vec<ActivityJson> = activities.into_iter().map(ActivityJson::from).collect();
    Ok(ok(&json!({
        "activities": activities,
        "meta": {
            "has_next_results": has_next,
            "has_previous_results": page.offset > 0,
        },
    })))
}
