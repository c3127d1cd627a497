//! The organisation's settings document and agent options, global or a team's.
//!
//! Agent options are checked with [`crate::agent_config::options::validate`] and refused with a
//! 422 naming `agent_options` unless `force`; `dry_run` checks without saving. After a change,
//! every host's next config pull sees it (here, and on other nodes through the relay).

use std::sync::Arc;

use flotilla_engine::TeamId;
use flotilla_storage::admin::{ConfigStore, TeamStore};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Effects, Viewer};
use crate::fleet::error::FleetError;
use crate::updates::UpdateChannels;

/// `force` stores agent options that fail validation; `dry_run` only validates. (Also the
/// `?force=true&dry_run=true` query parameters of the endpoints that apply.)
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct ApplyParams {
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// Checks agent options; with `force` a failure is only logged.
pub fn check_agent_options(
    options: &Value,
    force: bool,
    channels: &UpdateChannels,
) -> Result<(), FleetError> {
    let checked =
        crate::agent_config::options::validate(options).and_then(|()| channels.check(options));
    match checked {
        Ok(()) => Ok(()),
        Err(reason) if force => {
            tracing::warn!(%reason, "storing agent options that fail validation (force)");
            Ok(())
        }
        Err(reason) => Err(FleetError::validation("agent_options", reason)),
    }
}

/// Merges `patch` into `target` key by key (objects recursively; anything else replaces).
pub(crate) fn merge(target: &mut Value, patch: &Value) {
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

#[derive(Clone)]
pub struct SettingsService {
    config: Arc<dyn ConfigStore>,
    /// A team's agent options name the team in the activity log.
    teams: Arc<dyn TeamStore>,
    effects: Effects,
    /// `update_channels` must name channels the served update repository has.
    channels: UpdateChannels,
}

impl SettingsService {
    pub fn new(
        config: Arc<dyn ConfigStore>,
        teams: Arc<dyn TeamStore>,
        effects: Effects,
        channels: UpdateChannels,
    ) -> SettingsService {
        SettingsService {
            config,
            teams,
            effects,
            channels,
        }
    }

    /// The stored settings (`{}` when none were ever saved).
    pub async fn stored_settings(&self) -> Result<Value, FleetError> {
        Ok(self
            .config
            .app_settings()
            .await?
            .unwrap_or_else(|| json!({})))
    }

    /// Applies a settings patch (`PATCH /config`, or a `kind: config` spec): agent options are
    /// validated and replace the stored ones as a whole; other settings are merged in.
    pub async fn apply_config(
        &self,
        viewer: &Viewer,
        patch: Map<String, Value>,
        params: &ApplyParams,
    ) -> Result<(), FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let agent_options = patch.get("agent_options").filter(|v| !v.is_null()).cloned();
        if let Some(options) = &agent_options {
            check_agent_options(options, params.force, &self.channels)?;
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
        let features_changed = settings.contains_key("features");
        if !settings.is_empty() {
            let mut stored = self.stored_settings().await?;
            merge(&mut stored, &Value::Object(settings));
            self.config.set_app_settings(&stored, now).await?;
        }
        if features_changed && agent_options.is_none() {
            // The engine (here and on every node) picks up the features with the configs.
            self.effects.reload_agent_configs().await?;
        }
        if let Some(options) = &agent_options {
            self.config.set_agent_options(None, options, now).await?;
            self.effects.reload_agent_configs().await?;
            self.effects
                .record_activity(
                    Some(viewer.user.id),
                    "edited_agent_options",
                    json!({ "global": true, "team_id": null, "team_name": null }),
                    now,
                )
                .await;
        }
        Ok(())
    }

    /// Stores a team's agent options (after the checks), or only checks them on a dry run.
    pub async fn apply_team_agent_options(
        &self,
        viewer: &Viewer,
        team: TeamId,
        options: &Value,
        params: &ApplyParams,
    ) -> Result<(), FleetError> {
        Viewer::require(viewer.can_write(Some(team)))?;
        if !options.is_null() {
            check_agent_options(options, params.force, &self.channels)?;
        }
        let existing = self
            .teams
            .team(team)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("team {team} not found")))?;
        if params.dry_run {
            return Ok(());
        }
        let now = flotilla_engine::unix_now();
        self.config
            .set_agent_options(Some(team), options, now)
            .await?;
        self.effects.reload_agent_configs().await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "edited_agent_options",
                json!({ "global": false, "team_id": team.0, "team_name": existing.name }),
                now,
            )
            .await;
        Ok(())
    }
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
