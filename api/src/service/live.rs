//! Starting live queries: the SQL (ad hoc, or a saved query the viewer may read), the targets
//! (hosts, labels, teams) resolved to hosts and kept to those the viewer may run it on, then
//! the campaign started in the engine and the activity recorded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use flotilla_engine::campaigns::{NewCampaign, StartedCampaign};
use flotilla_engine::store::{CampaignRecord, TargetKind};
use flotilla_engine::{Campaigns, HostId, Hosts, TeamId};
use flotilla_storage::admin::{HostDirectory, LabelId, LabelStore, QueryId, QueryStore};
use serde_json::json;

use super::{Effects, Viewer};
use crate::fleet::error::FleetError;

/// The SQL to run and the saved query it comes from, checked against the viewer's rights.
pub struct Runnable {
    pub sql: String,
    pub query_id: Option<u64>,
    pub query_name: Option<String>,
    pub observer_can_run: bool,
}

/// What `POST /queries/run` targets, by id.
#[derive(Debug, Default)]
pub struct Selection {
    pub hosts: Vec<HostId>,
    pub labels: Vec<LabelId>,
    pub teams: Vec<TeamId>,
}

#[derive(Clone)]
pub struct LiveQueryService {
    /// Saved queries to run.
    queries: Arc<dyn QueryStore>,
    /// Targets by label and team, and hosts by identifier.
    hosts_dir: Arc<dyn HostDirectory>,
    /// Labels by name.
    labels: Arc<dyn LabelStore>,
    /// Which team a host is in and whether it is online, as the registry knows.
    hosts: Hosts,
    campaigns: Campaigns,
    effects: Effects,
}

impl LiveQueryService {
    pub fn new(
        queries: Arc<dyn QueryStore>,
        hosts_dir: Arc<dyn HostDirectory>,
        labels: Arc<dyn LabelStore>,
        hosts: Hosts,
        campaigns: Campaigns,
        effects: Effects,
    ) -> LiveQueryService {
        LiveQueryService {
            queries,
            hosts_dir,
            labels,
            hosts,
            campaigns,
            effects,
        }
    }

    /// Runs `query` (or the saved query `query_id`) on the hosts, labels and teams selected.
    pub async fn run(
        &self,
        viewer: &Viewer,
        query: Option<String>,
        query_id: Option<u64>,
        selected: Selection,
    ) -> Result<(Runnable, StartedCampaign), FleetError> {
        let runnable = self.runnable(viewer, query, query_id).await?;
        let mut hosts: BTreeSet<HostId> = selected.hosts.iter().copied().collect();
        hosts.extend(
            self.resolve_groups(&selected.labels, &selected.teams)
                .await?,
        );
        let mut record: Vec<(TargetKind, u64)> = Vec::new();
        record.extend(selected.hosts.iter().map(|h| (TargetKind::Host, h.0)));
        record.extend(selected.labels.iter().map(|l| (TargetKind::Label, l.0)));
        record.extend(selected.teams.iter().map(|t| (TargetKind::Team, t.0)));
        let targets = self.permitted(viewer, &runnable, hosts);
        let started = self.start(viewer, &runnable, targets, record, None).await?;
        Ok((runnable, started))
    }

    /// Runs `query` (or the saved query `query_id`) on hosts named by hostname, UUID or serial,
    /// and on labels named by name.
    pub async fn run_by_identifiers(
        &self,
        viewer: &Viewer,
        query: Option<String>,
        query_id: Option<u64>,
        host_identifiers: &[String],
        label_names: &[String],
    ) -> Result<(Runnable, StartedCampaign), FleetError> {
        let runnable = self.runnable(viewer, query, query_id).await?;
        let mut label_ids = Vec::with_capacity(label_names.len());
        let mut missing = Vec::new();
        for name in label_names {
            match self.labels.label_by_name(name).await? {
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
        let mut hosts: BTreeSet<HostId> = self
            .hosts_dir
            .host_ids_by_identifiers(host_identifiers)
            .await?
            .into_iter()
            .collect();
        hosts.extend(self.resolve_groups(&label_ids, &[]).await?);
        let mut record: Vec<(TargetKind, u64)> =
            hosts.iter().map(|h| (TargetKind::Host, h.0)).collect();
        record.extend(label_ids.iter().map(|l| (TargetKind::Label, l.0)));
        let targets = self.permitted(viewer, &runnable, hosts);
        let started = self.start(viewer, &runnable, targets, record, None).await?;
        Ok((runnable, started))
    }

    /// A saved query must be one the viewer may read (a team's query is not another team's to run);
    /// which hosts it may then run on is decided per host by [`permitted`].
    pub async fn runnable(
        &self,
        viewer: &Viewer,
        query: Option<String>,
        query_id: Option<u64>,
    ) -> Result<Runnable, FleetError> {
        if let Some(id) = query_id {
            let saved = self
                .queries
                .get_query(QueryId(id))
                .await?
                .ok_or_else(|| FleetError::NotFound(format!("query {id}")))?;
            Viewer::require(super::queries::can_read(viewer, saved.team))?;
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
    pub fn permitted(
        &self,
        viewer: &Viewer,
        runnable: &Runnable,
        hosts: BTreeSet<HostId>,
    ) -> Vec<HostId> {
        hosts
            .into_iter()
            .filter(
                |&host| match self.hosts.presence(host, flotilla_engine::unix_now()) {
                    Some(presence) => {
                        viewer.can_run_queries(presence.team, runnable.observer_can_run)
                    }
                    None => false,
                },
            )
            .collect()
    }

    /// Starts a campaign on `targets` (those the viewer may run on); `selected` is what was asked
    /// for, as the campaign's record keeps it. Records the activity.
    pub async fn start(
        &self,
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
        let started = self
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
        self.effects
            .record_activity(Some(viewer.user.id), "live_query", details, now)
            .await;
        Ok(started)
    }

    /// Hosts in the selected labels and teams: labels OR-ed, teams OR-ed, and the two groups
    /// AND-ed when both are given (Fleet's rule).
    async fn resolve_groups(
        &self,
        labels: &[LabelId],
        teams: &[TeamId],
    ) -> Result<BTreeSet<HostId>, FleetError> {
        let in_labels: Option<BTreeSet<HostId>> = if labels.is_empty() {
            None
        } else {
            Some(
                self.hosts_dir
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
                self.hosts_dir
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
}
