//! Policies, global or per team. Anyone with a role reads global policies; a team's are read
//! by that team's users. Global admins and maintainers write global policies (and every
//! team's), team admins and maintainers their team's. After every change the engine gets the
//! new set (every host runs its policies at its next check-in), the other nodes are told, and
//! the activity log records it.

use std::sync::Arc;

use flotilla_engine::TeamId;
use flotilla_engine::policies::POLICY_PLATFORMS;
use flotilla_storage::admin::{Policy, PolicyFields, PolicyId, PolicySpec, PolicyStore, TeamStore};
use serde_json::json;

use super::{Effects, Viewer};
use crate::fleet::error::FleetError;

/// Whether `viewer` may read policies of `team` (`None`: the global ones).
pub fn can_read(viewer: &Viewer, team: Option<TeamId>) -> bool {
    match team {
        None => viewer.has_any_role(),
        Some(_) => viewer.can_read(team),
    }
}

/// Every field checked: name and query present, platforms among Fleet's.
pub fn check(fields: &PolicyFields) -> Result<(), FleetError> {
    if fields.name.trim().is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    if fields.query.trim().is_empty() {
        return Err(FleetError::validation("query", "cannot be empty"));
    }
    let unknown = fields
        .platform
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find(|p| !POLICY_PLATFORMS.contains(p));
    if let Some(platform) = unknown {
        return Err(FleetError::validation(
            "platform",
            format!(
                "`{platform}` is not a platform; use a comma-separated list of: {}",
                POLICY_PLATFORMS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A `kind: policy` spec as `fleetctl` sends it: the team by name, empty for global.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PolicySpecInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub resolution: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub team: String,
}

#[derive(Clone)]
pub struct PolicyService {
    policies: Arc<dyn PolicyStore>,
    /// Team names for specs and the activity log.
    teams: Arc<dyn TeamStore>,
    effects: Effects,
}

impl PolicyService {
    pub fn new(
        policies: Arc<dyn PolicyStore>,
        teams: Arc<dyn TeamStore>,
        effects: Effects,
    ) -> PolicyService {
        PolicyService {
            policies,
            teams,
            effects,
        }
    }

    /// The policies of `team` (`None`: global), with their counts.
    pub async fn list(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
    ) -> Result<Vec<Policy>, FleetError> {
        Viewer::require(can_read(viewer, team))?;
        self.require_team(team).await?;
        Ok(self.policies.policies(team).await?)
    }

    /// How many policies `team` has (`None`: global ones).
    pub async fn count(&self, viewer: &Viewer, team: Option<TeamId>) -> Result<u64, FleetError> {
        Viewer::require(can_read(viewer, team))?;
        self.require_team(team).await?;
        Ok(self.policies.policy_count(team).await?)
    }

    /// The policy `id` of `team` (`None`: a global one), if `viewer` may read it; a policy of
    /// another scope is not found.
    pub async fn readable(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        id: PolicyId,
    ) -> Result<Policy, FleetError> {
        Viewer::require(can_read(viewer, team))?;
        self.policies
            .policy(id)
            .await?
            .filter(|p| p.team == team)
            .ok_or_else(|| FleetError::NotFound(format!("policy {id} not found")))
    }

    pub async fn create(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        fields: PolicyFields,
    ) -> Result<Policy, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        self.require_team(team).await?;
        check(&fields)?;
        let now = flotilla_engine::unix_now();
        let policy = self
            .policies
            .create_policy(team, &fields, Some(viewer.user.id), now)
            .await?;
        self.effects.publish_policy_queries(false).await?;
        self.record(viewer, "created_policy", &policy, now).await?;
        Ok(policy)
    }

    /// Changes the fields of a policy of `team` the viewer may write: `edit` is given the
    /// stored ones.
    pub async fn update(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        id: PolicyId,
        edit: impl FnOnce(&mut PolicyFields),
    ) -> Result<Policy, FleetError> {
        let policy = self.readable(viewer, team, id).await?;
        Viewer::require(viewer.can_write(policy.team))?;
        let mut fields = policy.fields.clone();
        edit(&mut fields);
        check(&fields)?;
        let now = flotilla_engine::unix_now();
        let updated = self.policies.update_policy(id, &fields, now).await?;
        self.effects.publish_policy_queries(false).await?;
        self.record(viewer, "edited_policy", &updated, now).await?;
        Ok(updated)
    }

    /// Deletes the policies of `team` among `ids` (others are skipped); answers how many.
    /// All or nothing: one the viewer may not delete refuses the whole request.
    pub async fn delete_many(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        ids: &[PolicyId],
    ) -> Result<u64, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        let mut found = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(policy) = self.policies.policy(id).await?
                && policy.team == team
            {
                found.push(policy.id);
            }
        }
        let deleted = self.policies.delete_policies(&found).await?;
        if deleted.is_empty() {
            return Ok(0);
        }
        self.effects.publish_policy_queries(false).await?;
        let now = flotilla_engine::unix_now();
        for policy in &deleted {
            self.record(viewer, "deleted_policy", policy, now).await?;
        }
        Ok(deleted.len() as u64)
    }

    /// Creates or replaces the policies of `specs` (by team name and policy name). The team
    /// names are resolved first and every spec checked, so nothing is stored unless all are
    /// good.
    /// With `dry_run` nothing is stored once the checks pass.
    pub async fn apply_specs(
        &self,
        viewer: &Viewer,
        specs: Vec<PolicySpecInput>,
        dry_run: bool,
    ) -> Result<Vec<Policy>, FleetError> {
        let teams = self.teams.teams().await?;
        let mut resolved = Vec::with_capacity(specs.len());
        for spec in specs {
            let team = match spec.team.trim() {
                "" => None,
                name => Some(
                    teams
                        .iter()
                        .find(|t| t.name.eq_ignore_ascii_case(name))
                        .map(|t| t.id)
                        .ok_or_else(|| {
                            FleetError::validation("team", format!("no team named `{name}`"))
                        })?,
                ),
            };
            Viewer::require(viewer.can_write(team))?;
            let fields = PolicyFields {
                name: spec.name.trim().to_owned(),
                query: spec.query,
                description: spec.description,
                resolution: spec.resolution,
                platform: spec.platform,
                critical: spec.critical,
            };
            check(&fields)?;
            resolved.push(PolicySpec { team, fields });
        }
        if resolved.is_empty() || dry_run {
            return Ok(Vec::new());
        }
        let now = flotilla_engine::unix_now();
        let applied = self
            .policies
            .apply_policy_specs(&resolved, Some(viewer.user.id), now)
            .await?;
        self.effects.publish_policy_queries(false).await?;
        let names: Vec<&str> = applied.iter().map(|p| p.fields.name.as_str()).collect();
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "applied_spec_policy",
                json!({ "policies": names }),
                now,
            )
            .await;
        Ok(applied)
    }

    /// A team that is not there is 404 (for team routes); `None` always exists.
    async fn require_team(&self, team: Option<TeamId>) -> Result<(), FleetError> {
        if let Some(team) = team
            && self.teams.team(team).await?.is_none()
        {
            return Err(FleetError::NotFound(format!("team {team} not found")));
        }
        Ok(())
    }

    async fn record(
        &self,
        viewer: &Viewer,
        kind: &str,
        policy: &Policy,
        now: i64,
    ) -> Result<(), FleetError> {
        let team_name = super::team_name(self.teams.as_ref(), policy.team).await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                kind,
                json!({
                    "policy_id": policy.id.0,
                    "policy_name": policy.fields.name,
                    "team_id": policy.team.map(|t| t.0),
                    "team_name": team_name,
                }),
                now,
            )
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str, query: &str, platform: &str) -> PolicyFields {
        PolicyFields {
            name: name.into(),
            query: query.into(),
            platform: platform.into(),
            ..PolicyFields::default()
        }
    }

    #[test]
    fn fields_are_checked() {
        assert!(check(&fields("p", "SELECT 1", "")).is_ok());
        assert!(check(&fields("p", "SELECT 1", "darwin, linux")).is_ok());
        assert!(check(&fields(" ", "SELECT 1", "")).is_err());
        assert!(check(&fields("p", "", "")).is_err());
        assert!(check(&fields("p", "SELECT 1", "ubuntu")).is_err());
    }

    #[test]
    fn global_policies_are_read_by_anyone_with_a_role_and_written_by_global_writers() {
        use crate::service::viewer::tests::viewer;
        let team_admin = viewer(None, &[(1, "admin")]);
        assert!(can_read(&team_admin, None));
        assert!(!team_admin.can_write(None));
        assert!(team_admin.can_write(Some(TeamId(1))));
        assert!(!can_read(&team_admin, Some(TeamId(2))));
        let observer = viewer(Some("observer"), &[]);
        assert!(can_read(&observer, Some(TeamId(2))));
        assert!(!observer.can_write(None));
        let nobody = viewer(None, &[]);
        assert!(!can_read(&nobody, None));
    }
}
