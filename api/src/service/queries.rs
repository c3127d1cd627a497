//! Saved queries, global or per team. Anyone with a role reads global queries (teams inherit
//! them); a team's queries are read by that team's users. Admins and maintainers write, for
//! their scope. After a change hosts pull the new schedule, and a report whose rows no longer
//! describe its query is dropped.

use std::sync::Arc;

use flotilla_engine::TeamId;
use flotilla_storage::admin::{QueryFields, QueryId, QueryStore, SavedQuery, TeamStore};
use serde_json::json;

use super::{Effects, Viewer};
use crate::agent_config::reports::Reports;
use crate::fleet::error::FleetError;

const LOGGING: &[&str] = &["snapshot", "differential", "differential_ignore_removals"];
const PLATFORMS: &[&str] = &["darwin", "linux", "windows", "chrome"];

/// Whether `viewer` may read queries of `team` (`None`: global ones, inherited by every team).
pub fn can_read(viewer: &Viewer, team: Option<TeamId>) -> bool {
    match team {
        None => viewer.has_any_role(),
        Some(_) => viewer.can_read(team),
    }
}

/// Every field checked: name and SQL present, logging and platform among Fleet's values.
pub fn check(fields: &QueryFields) -> Result<(), FleetError> {
    if fields.name.trim().is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    if fields.query.trim().is_empty() {
        return Err(FleetError::validation("query", "cannot be empty"));
    }
    if !LOGGING.contains(&fields.logging.as_str()) {
        return Err(FleetError::validation(
            "logging",
            format!("use one of: {}", LOGGING.join(", ")),
        ));
    }
    let unknown = fields
        .platform
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find(|p| !PLATFORMS.contains(p));
    if let Some(platform) = unknown {
        return Err(FleetError::validation(
            "platform",
            format!(
                "`{platform}` is not a platform; use a comma-separated list of: {}",
                PLATFORMS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Whether a query's report no longer describes it after `before` became `after`, as Fleet
/// decides: the SQL changed, data is discarded, or logging left snapshot.
pub(crate) fn report_invalidated(before: &QueryFields, after: &QueryFields) -> bool {
    after.query != before.query || after.discard_data || after.logging != "snapshot"
}

/// Which saved query to delete.
#[derive(Debug)]
pub enum QueryTarget {
    Id(QueryId),
    /// By name within a team (`None`: global).
    Name(Option<TeamId>, String),
}

#[derive(Clone)]
pub struct QueryService {
    queries: Arc<dyn QueryStore>,
    /// The activity log names a query's team.
    teams: Arc<dyn TeamStore>,
    reports: Arc<Reports>,
    effects: Effects,
}

impl QueryService {
    pub fn new(
        queries: Arc<dyn QueryStore>,
        teams: Arc<dyn TeamStore>,
        reports: Arc<Reports>,
        effects: Effects,
    ) -> QueryService {
        QueryService {
            queries,
            teams,
            reports,
            effects,
        }
    }

    /// The saved query with this id, if `viewer` may read it.
    pub async fn readable(&self, viewer: &Viewer, id: QueryId) -> Result<SavedQuery, FleetError> {
        let query = self
            .queries
            .get_query(id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("query {id} not found")))?;
        Viewer::require(can_read(viewer, query.team))?;
        Ok(query)
    }

    pub async fn create(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        fields: QueryFields,
    ) -> Result<SavedQuery, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        check(&fields)?;
        let now = flotilla_engine::unix_now();
        let query = self
            .queries
            .create_query(team, &fields, Some(viewer.user.id), now)
            .await?;
        self.schedule_changed(None).await?;
        self.record(viewer, "created_saved_query", &query, now)
            .await?;
        Ok(query)
    }

    /// Changes the fields of a query the viewer may write: `edit` is given the stored ones.
    pub async fn update(
        &self,
        viewer: &Viewer,
        id: QueryId,
        edit: impl FnOnce(&mut QueryFields),
    ) -> Result<SavedQuery, FleetError> {
        let query = self.readable(viewer, id).await?;
        Viewer::require(viewer.can_write(query.team))?;
        let mut fields = query.fields.clone();
        edit(&mut fields);
        check(&fields)?;
        let now = flotilla_engine::unix_now();
        let updated = self.queries.update_query(query.id, &fields, now).await?;
        let report_invalid = report_invalidated(&query.fields, &updated.fields);
        self.schedule_changed(report_invalid.then_some(updated.id))
            .await?;
        self.record(viewer, "edited_saved_query", &updated, now)
            .await?;
        Ok(updated)
    }

    pub async fn delete(&self, viewer: &Viewer, target: QueryTarget) -> Result<(), FleetError> {
        let query = match target {
            QueryTarget::Id(id) => self.readable(viewer, id).await?,
            QueryTarget::Name(team, name) => {
                Viewer::require(viewer.can_write(team))?;
                self.queries
                    .query_by_name(team, &name)
                    .await?
                    .ok_or_else(|| FleetError::NotFound(format!("query {name} not found")))?
            }
        };
        Viewer::require(viewer.can_write(query.team))?;
        let deleted = self
            .queries
            .delete_query(query.id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("query {} not found", query.id)))?;
        self.schedule_changed(Some(deleted.id)).await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "deleted_saved_query",
                json!({
                    "query_name": deleted.fields.name,
                    "team_id": deleted.team.map(|t| t.0),
                    "team_name": super::team_name(self.teams.as_ref(), deleted.team).await?,
                }),
                flotilla_engine::unix_now(),
            )
            .await;
        Ok(())
    }

    /// Deletes the queries among `ids` that exist; answers how many. All or nothing: one the
    /// viewer may not delete refuses the whole request.
    pub async fn delete_many(&self, viewer: &Viewer, ids: &[QueryId]) -> Result<u64, FleetError> {
        let mut found = Vec::with_capacity(ids.len());
        let mut teams = Vec::new();
        for &id in ids {
            if let Some(query) = self.queries.get_query(id).await? {
                Viewer::require(viewer.can_write(query.team))?;
                found.push(query.id);
                teams.push(query.team);
            }
        }
        let deleted = self.queries.delete_queries(&found).await?;
        for &id in &found {
            self.reports.forget(id);
        }
        if deleted > 0 {
            self.schedule_changed(None).await?;
            let team = teams.first().copied().flatten();
            self.effects
                .record_activity(
                    Some(viewer.user.id),
                    "deleted_multiple_saved_query",
                    json!({
                        "query_ids": found.iter().map(|q| q.0).collect::<Vec<_>>(),
                        "team_id": team.map(|t| t.0),
                        "team_name": super::team_name(self.teams.as_ref(), team).await?,
                    }),
                    flotilla_engine::unix_now(),
                )
                .await;
        }
        Ok(deleted)
    }

    /// After a saved query changed: hosts pull the new schedule, and a report whose rows no
    /// longer describe the query (`forget_report`) is dropped.
    async fn schedule_changed(&self, forget_report: Option<QueryId>) -> Result<(), FleetError> {
        if let Some(query) = forget_report {
            self.reports.forget(query);
            self.queries.delete_report(query).await?;
        }
        self.effects.reload_agent_configs().await
    }

    /// `created_saved_query` / `edited_saved_query` for `query`.
    async fn record(
        &self,
        viewer: &Viewer,
        kind: &str,
        query: &SavedQuery,
        now: i64,
    ) -> Result<(), FleetError> {
        self.effects
            .record_activity(
                Some(viewer.user.id),
                kind,
                json!({
                    "query_id": query.id.0,
                    "query_name": query.fields.name,
                    "team_id": query.team.map(|t| t.0),
                    "team_name": super::team_name(self.teams.as_ref(), query.team).await?,
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

    fn fields() -> QueryFields {
        QueryFields {
            name: "info".into(),
            description: String::new(),
            query: "SELECT 1;".into(),
            interval: 0,
            platform: String::new(),
            min_osquery_version: String::new(),
            automations_enabled: false,
            logging: "snapshot".into(),
            observer_can_run: false,
            discard_data: false,
        }
    }

    #[test]
    fn query_fields_are_checked() {
        assert!(check(&fields()).is_ok());
        let mut f = fields();
        f.platform = "darwin, linux".into();
        assert!(check(&f).is_ok());
        f.platform = "darwin,beos".into();
        assert!(check(&f).is_err());
        let mut f = fields();
        f.logging = "sometimes".into();
        assert!(check(&f).is_err());
        let mut f = fields();
        f.query = "  ".into();
        assert!(check(&f).is_err());
    }
}
