//! Teams and enroll secrets. Global admins manage teams; admins and maintainers of a team (or
//! global ones) manage its enroll secrets. After any change to secrets the engine reloads them,
//! so a host enrolling with a team's secret joins that team at once.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{Team, TeamChanges, TeamSecret, TeamStore};
use serde::Deserialize;
use serde_json::{Value, json};

use super::settings::{ApplyParams, SettingsService};
use super::{Effects, Viewer};
use crate::fleet::error::FleetError;

/// Fleet's cap on the enroll secrets of one team (or of the global set).
const MAX_SECRETS: usize = 50;

/// A new enroll secret: 24 random bytes, URL-safe base64.
pub(crate) fn generate_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Trimmed, non-empty, without duplicates, at most [`MAX_SECRETS`].
pub fn checked_secrets(secrets: Vec<String>) -> Result<Vec<String>, FleetError> {
    if secrets.len() > MAX_SECRETS {
        return Err(FleetError::validation(
            "secrets",
            format!("at most {MAX_SECRETS} enroll secrets are allowed"),
        ));
    }
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let secret = secret.trim().to_owned();
        if secret.is_empty() {
            return Err(FleetError::validation("secret", "cannot be empty"));
        }
        if seen.insert(secret.clone()) {
            checked.push(secret);
        }
    }
    Ok(checked)
}

/// One enroll secret as a request or a spec names it: `{"secret": "…"}`.
#[derive(Debug, Deserialize)]
pub struct SecretBody {
    #[serde(default)]
    pub(crate) secret: String,
}

impl SecretBody {
    /// The secrets of a request body, as the service takes them.
    pub(crate) fn texts(secrets: Vec<SecretBody>) -> Vec<String> {
        secrets.into_iter().map(|s| s.secret).collect()
    }
}

/// What `PATCH /teams/{id}` may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TeamEdit {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The team's whole agent options document (`Some(null)` removes them).
    pub agent_options: Option<Value>,
}

#[derive(Clone)]
pub struct TeamService {
    teams: Arc<dyn TeamStore>,
    /// A team's agent options are changed there.
    settings: SettingsService,
    effects: Effects,
}

impl TeamService {
    pub fn new(
        teams: Arc<dyn TeamStore>,
        settings: SettingsService,
        effects: Effects,
    ) -> TeamService {
        TeamService {
            teams,
            settings,
            effects,
        }
    }

    /// The team with this id, if the viewer may see it.
    pub async fn readable(&self, viewer: &Viewer, id: TeamId) -> Result<Team, FleetError> {
        Viewer::require(viewer.can_read(Some(id)))?;
        self.teams
            .team(id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("team {id} not found")))
    }

    /// A new team, with a generated enroll secret.
    pub async fn create(
        &self,
        viewer: &Viewer,
        name: &str,
        description: &str,
    ) -> Result<Team, FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let name = name.trim();
        if name.is_empty() {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        let now = flotilla_engine::unix_now();
        let team = self
            .teams
            .create_team(name, description.trim(), &generate_secret(), now)
            .await?;
        self.effects.reload_enroll_secrets().await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "created_team",
                json!({ "team_id": team.id.0, "team_name": team.name }),
                now,
            )
            .await;
        Ok(team)
    }

    /// Name, description and agent options; on a dry run only the agent options are checked.
    pub async fn update(
        &self,
        viewer: &Viewer,
        id: TeamId,
        edit: TeamEdit,
        params: &ApplyParams,
    ) -> Result<Team, FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        if let Some(options) = &edit.agent_options {
            self.settings
                .apply_team_agent_options(viewer, id, options, params)
                .await?;
        }
        if params.dry_run {
            return self.readable(viewer, id).await;
        }
        let name = edit.name.map(|n| n.trim().to_owned());
        if name.as_deref() == Some("") {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        let changes = TeamChanges {
            name,
            description: edit.description,
        };
        Ok(self
            .teams
            .update_team(id, &changes, flotilla_engine::unix_now())
            .await?)
    }

    /// Deletes a team: its hosts move to no team, its enroll secrets stop working.
    pub async fn delete(&self, viewer: &Viewer, id: TeamId) -> Result<Team, FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let (team, moved) = self
            .teams
            .delete_team(id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("team {id} not found")))?;
        for host in moved {
            self.effects.hosts.set_team(host, None);
        }
        self.effects.reload_enroll_secrets().await?;
        self.effects.reload_agent_configs().await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "deleted_team",
                json!({ "team_id": team.id.0, "team_name": team.name }),
                flotilla_engine::unix_now(),
            )
            .await;
        Ok(team)
    }

    /// The enroll secrets of `team` (`None`: the global ones), for those who manage them.
    pub async fn secrets(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
    ) -> Result<Vec<TeamSecret>, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        match team {
            Some(team) => Ok(self.readable(viewer, team).await?.secrets),
            None => Ok(self.teams.enroll_secrets_of(None).await?),
        }
    }

    /// Replaces the enroll secrets of `team` (`None`: the global ones); a dry run only checks.
    pub async fn replace_secrets(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        secrets: Vec<String>,
        dry_run: bool,
    ) -> Result<Vec<TeamSecret>, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        let secrets = checked_secrets(secrets)?;
        if dry_run {
            return Ok(Vec::new());
        }
        let now = flotilla_engine::unix_now();
        let stored = self
            .teams
            .replace_enroll_secrets(team, &secrets, now)
            .await?;
        self.effects.reload_enroll_secrets().await?;
        let team_name = super::team_name(self.teams.as_ref(), team).await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "edited_enroll_secrets",
                json!({ "team_id": team.map(|t| t.0), "team_name": team_name }),
                now,
            )
            .await;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(secrets: &[&str]) -> Vec<String> {
        secrets.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn secrets_are_trimmed_deduplicated_and_capped() {
        assert_eq!(
            checked_secrets(secrets(&[" a ", "b", "a"])).unwrap(),
            ["a", "b"]
        );
        assert!(checked_secrets(secrets(&["a", "  "])).is_err());
        let many: Vec<String> = (0..51).map(|n| n.to_string()).collect();
        assert!(checked_secrets(many).is_err());
        assert_eq!(generate_secret().len(), 32);
    }
}
