//! `GET /updates`: what the agents' update repository (`serve --tuf-repo`) publishes, so an
//! admin can see which channels `update_channels` may name. Any signed-in user may read it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::{FleetError, ok};
use crate::service::Viewer;
use crate::state::SharedState;

/// The targets, the channels and versions per component and platform, and each role's
/// version and expiry. `served` is false when this server serves no repository.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let Some(updates) = &state.updates else {
        return Ok(ok(
            &json!({"served": false, "targets": [], "components": {}, "metadata": {}}),
        ));
    };
    let targets = updates.targets();
    // component → platform → channel → version
    let mut components: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, &str>>> = BTreeMap::new();
    for row in targets.iter() {
        components
            .entry(&row.name)
            .or_default()
            .entry(&row.platform)
            .or_default()
            .insert(&row.channel, &row.version);
    }
    let metadata: serde_json::Map<String, Value> = updates
        .expiry()
        .into_iter()
        .flatten()
        .map(|m| {
            let expires = jiff::Timestamp::from_second(m.expires_unix).unwrap_or_default();
            (
                m.role.to_string(),
                json!({"version": m.version, "expires": expires.to_string()}),
            )
        })
        .collect();
    Ok(ok(&json!({
        "served": true,
        "targets": *targets,
        "components": components,
        "metadata": metadata,
    })))
}
