//! Labels: creating, changing and deleting them. After a change to dynamic labels the engine
//! gets the new set of label queries (every host runs it at its next check-in) and the other
//! nodes are told. Builtin labels cannot be changed.

use std::sync::Arc;

use flotilla_engine::HostId;
use flotilla_storage::admin::{
    HostDirectory, Label, LabelChanges, LabelId, LabelMembership, LabelStore, LabelType, NewLabel,
};
use serde_json::json;

use super::{Effects, Viewer};
use crate::fleet::error::FleetError;

/// Platforms a dynamic label can be limited to (empty: all).
pub(crate) const PLATFORMS: &[&str] = &[
    "", "darwin", "windows", "ubuntu", "centos", "linux", "chrome",
];

/// `PLATFORMS` as a 422 says them.
pub(crate) fn check_platform(platform: &str) -> Result<(), FleetError> {
    if PLATFORMS.contains(&platform) {
        return Ok(());
    }
    Err(FleetError::validation(
        "platform",
        format!("use one of: {}", PLATFORMS[1..].join(", ")),
    ))
}

/// A new label as asked for: `query` makes a dynamic label, `hosts` a manual one.
#[derive(Debug, Default)]
pub struct LabelRequest {
    pub name: String,
    pub description: String,
    pub query: Option<String>,
    pub platform: String,
    /// Identifiers (hostname, uuid, serial, osquery host id) of a manual label's members.
    pub hosts: Option<Vec<String>>,
}

/// What `PATCH /labels/{id}` may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct LabelEdit {
    pub name: Option<String>,
    pub description: Option<String>,
    pub hosts: Option<Vec<String>>,
}

/// Which label to delete: Fleet deletes by name, or by id under `/labels/id/{id}`.
#[derive(Debug)]
pub enum LabelTarget {
    Id(LabelId),
    Name(String),
}

fn builtin_refused(label: &Label, verb: &str) -> FleetError {
    FleetError::validation(
        "label_id",
        format!("built-in label `{}` can't be {verb}", label.name),
    )
}

#[derive(Clone)]
pub struct LabelService {
    labels: Arc<dyn LabelStore>,
    /// Manual labels name their members by identifier.
    hosts: Arc<dyn HostDirectory>,
    effects: Effects,
}

impl LabelService {
    pub fn new(
        labels: Arc<dyn LabelStore>,
        hosts: Arc<dyn HostDirectory>,
        effects: Effects,
    ) -> LabelService {
        LabelService {
            labels,
            hosts,
            effects,
        }
    }

    /// The ids of hosts named by identifier (hostname, uuid, serial, osquery host id); 422
    /// naming any that match no host.
    pub async fn resolve_hosts(&self, identifiers: &[String]) -> Result<Vec<HostId>, FleetError> {
        let mut ids = Vec::with_capacity(identifiers.len());
        let mut unknown = Vec::new();
        for identifier in identifiers {
            match self.hosts.host_by_identifier(identifier.trim()).await? {
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

    /// The label with this id, if the viewer may see it (among the hosts it may see).
    pub async fn visible(&self, viewer: &Viewer, id: LabelId) -> Result<Label, FleetError> {
        Viewer::require(viewer.has_any_role())?;
        self.labels
            .label(id, &viewer.host_scope())
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("label {id} not found")))
    }

    /// A manual label's members (`None` for other labels).
    pub async fn manual_hosts(&self, label: &Label) -> Result<Option<Vec<HostId>>, FleetError> {
        if label.membership != LabelMembership::Manual {
            return Ok(None);
        }
        Ok(Some(self.labels.manual_label_hosts(label.id).await?))
    }

    /// Creates a label; answers it with a manual label's members.
    pub async fn create(
        &self,
        viewer: &Viewer,
        request: LabelRequest,
    ) -> Result<(Label, Option<Vec<HostId>>), FleetError> {
        Viewer::require(viewer.can_write(None))?;
        let name = request.name.trim();
        if name.is_empty() {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        let query = request.query.unwrap_or_default();
        let (membership, hosts) = match (query.trim().is_empty(), request.hosts) {
            (false, Some(_)) => {
                return Err(FleetError::validation(
                    "query",
                    "a label has either a query (dynamic) or hosts (manual), not both",
                ));
            }
            (false, None) => (LabelMembership::Dynamic, Vec::new()),
            (true, hosts) => (
                LabelMembership::Manual,
                self.resolve_hosts(&hosts.unwrap_or_default()).await?,
            ),
        };
        check_platform(&request.platform)?;
        let new = NewLabel {
            name: name.to_owned(),
            description: request.description,
            query,
            platform: request.platform,
            membership,
            hosts,
        };
        let now = flotilla_engine::unix_now();
        let label = self.labels.create_label(&new, now).await?;
        if membership == LabelMembership::Dynamic {
            self.effects.publish_label_queries(false).await?;
        }
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "created_label",
                json!({ "label_id": label.id.0, "label_name": label.name }),
                now,
            )
            .await;
        let hosts = (membership == LabelMembership::Manual).then_some(new.hosts);
        Ok((label, hosts))
    }

    /// Name, description, and a manual label's hosts. A label's query and platform cannot
    /// change. Answers the label with a manual label's members.
    pub async fn update(
        &self,
        viewer: &Viewer,
        id: LabelId,
        edit: LabelEdit,
    ) -> Result<(Label, Option<Vec<HostId>>), FleetError> {
        Viewer::require(viewer.can_write(None))?;
        let label = self.visible(viewer, id).await?;
        if label.label_type == LabelType::Builtin {
            return Err(builtin_refused(&label, "modified"));
        }
        let name = edit.name.map(|n| n.trim().to_owned());
        if name.as_deref() == Some("") {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        let hosts = match edit.hosts {
            Some(identifiers) => Some(self.resolve_hosts(&identifiers).await?),
            None => None,
        };
        let changes = LabelChanges {
            name,
            description: edit.description,
            hosts,
        };
        let label = self
            .labels
            .update_label(label.id, &changes, flotilla_engine::unix_now())
            .await?;
        let hosts = self.manual_hosts(&label).await?;
        Ok((label, hosts))
    }

    /// Deletes a label; builtin labels stay.
    pub async fn delete(&self, viewer: &Viewer, target: LabelTarget) -> Result<(), FleetError> {
        Viewer::require(viewer.can_write(None))?;
        let label = match target {
            LabelTarget::Id(id) => self.visible(viewer, id).await?,
            LabelTarget::Name(name) => self
                .labels
                .label_by_name(&name)
                .await?
                .ok_or_else(|| FleetError::NotFound(format!("label {name} not found")))?,
        };
        if label.label_type == LabelType::Builtin {
            return Err(builtin_refused(&label, "deleted"));
        }
        let deleted = self
            .labels
            .delete_label(label.id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("label {} not found", label.name)))?;
        self.effects.publish_label_queries(false).await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "deleted_label",
                json!({ "label_id": deleted.id.0, "label_name": deleted.name }),
                flotilla_engine::unix_now(),
            )
            .await;
        Ok(())
    }
}
