//! Deleting and transferring hosts: the store first, then the engine's registry, so a deleted
//! host's node key stops working at once and a moved host enrolls and reports in its new team.

use std::sync::Arc;

use flotilla_engine::{HostId, TeamId};
use flotilla_storage::admin::{
    Host, HostDirectory, HostFilter, HostScope, StatusFilter, TeamStore,
};
use serde_json::json;

use super::{Effects, Viewer};
use crate::fleet::error::FleetError;

#[derive(Clone)]
pub struct HostService {
    hosts: Arc<dyn HostDirectory>,
    /// The team a host moves to names it in the activity log.
    teams: Arc<dyn TeamStore>,
    effects: Effects,
}

impl HostService {
    pub fn new(
        hosts: Arc<dyn HostDirectory>,
        teams: Arc<dyn TeamStore>,
        effects: Effects,
    ) -> HostService {
        HostService {
            hosts,
            teams,
            effects,
        }
    }

    /// Forgets the host; its node key stops working at once, so the agent is told
    /// `node_invalid` and enrolls again as a new host.
    pub async fn delete(&self, viewer: &Viewer, id: HostId) -> Result<Host, FleetError> {
        let not_found = || FleetError::NotFound(format!("host {id} not found"));
        let host = self.hosts.host(id).await?.ok_or_else(not_found)?;
        Viewer::require(viewer.can_write(host.team))?;
        let host = self
            .hosts
            .delete_host(host.id)
            .await?
            .ok_or_else(not_found)?;
        self.effects.hosts.remove(host.id);
        let display_name = if host.computer_name.is_empty() {
            &host.hostname
        } else {
            &host.computer_name
        };
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "deleted_host",
                json!({
                    "host_id": host.id.0,
                    "host_display_name": display_name,
                    "host_serial": host.hardware_serial,
                    "triggered_by": "manual",
                }),
                flotilla_engine::unix_now(),
            )
            .await;
        Ok(host)
    }

    /// Has the host run its detail queries again at its next check-in. Anyone who can see the
    /// host may ask (as in Fleet).
    pub async fn refetch(&self, viewer: &Viewer, id: HostId) -> Result<(), FleetError> {
        let not_found = || FleetError::NotFound(format!("host {id} not found"));
        let host = self.hosts.host(id).await?.ok_or_else(not_found)?;
        Viewer::require(viewer.can_read(host.team))?;
        if !self.effects.hosts.refetch(host.id).await? {
            return Err(not_found());
        }
        Ok(())
    }

    /// Moves hosts to a team (or to none), in the database and in the registry. Needs write
    /// access to the target team and to every host's current team. Answers the hosts moved.
    pub async fn transfer(
        &self,
        viewer: &Viewer,
        team: Option<TeamId>,
        ids: Vec<HostId>,
    ) -> Result<Vec<HostId>, FleetError> {
        Viewer::require(viewer.can_write(team))?;
        if let Some(writable) = viewer.writable_teams() {
            let among = |scope| HostFilter {
                scope,
                status: Some(StatusFilter::IdsIn(ids.clone())),
                ..HostFilter::all()
            };
            let existing = self.hosts.count_hosts(&among(HostScope::All)).await?;
            let allowed = self
                .hosts
                .count_hosts(&among(HostScope::Teams(writable)))
                .await?;
            Viewer::require(existing == allowed)?;
        }
        let now = flotilla_engine::unix_now();
        let moved = self.hosts.transfer_hosts(team, &ids, now).await?;
        for &host in &moved {
            self.effects.hosts.set_team(host, team);
        }
        let team_name = super::team_name(self.teams.as_ref(), team).await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "transferred_hosts",
                json!({
                    "team_id": team.map(|t| t.0),
                    "team_name": team_name,
                    "host_ids": moved.iter().map(|h| h.0).collect::<Vec<_>>(),
                }),
                now,
            )
            .await;
        Ok(moved)
    }
}
