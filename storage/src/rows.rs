//! Row → model mapping. What a row means is written once here; how each backend's columns
//! decode is [`ModelRow`]'s business (`sql/`).

use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{DeviceAuth, EnrollSecret, StoreError, StoredHost};
use flotilla_engine::vitals::Intervals;

pub(crate) use crate::sql::ModelRow;

use crate::admin::{
    Activity, Host, HostPolicy, Label, LabelId, LabelMembership, LabelQuery, LabelType, Policy,
    PolicyFields, PolicyId, QueryFields, QueryId, SavedQuery, Team, TeamSecret, User, UserId,
    UserTeam,
};

/// Columns: those of `hosts::select_stored_host!`.
pub(crate) fn stored_host(row: &impl ModelRow) -> Result<StoredHost, sqlx::Error> {
    let node_key = row.opt_text("node_key")?;
    Ok(StoredHost {
        id: HostId(row.id("id")?),
        node_key: node_key.as_deref().and_then(NodeKey::new),
        identifier: row.text("osquery_host_id")?,
        hostname: row.text("hostname")?,
        platform: row.text("platform")?,
        team: row.opt_id("team_id")?.map(TeamId),
        intervals: Intervals {
            distributed: row.int("distributed_interval")? as u32,
            config_refresh: row.int("config_tls_refresh")? as u32,
            logger: row.int("logger_tls_period")? as u32,
        },
        seen_time: row.int("seen_time")?,
        detail_updated_at: row.int("detail_updated_at")?,
        label_updated_at: row.int("label_updated_at")?,
        policy_updated_at: row.int("policy_updated_at")?,
        refetch_requested: row.flag("refetch_requested")?,
        orbit_node_key: row
            .opt_text("orbit_node_key")?
            .as_deref()
            .and_then(NodeKey::new),
        device: match row.opt_text("device_token")? {
            Some(token) => Some(DeviceAuth {
                token,
                previous: row.opt_text("device_previous_token")?,
                updated_at: row.int("device_updated_at")?,
            }),
            None => None,
        },
        os_version: row.text("os_version")?,
        // Stored as a signed 64-bit integer, the same bits.
        software_fingerprint: row.int("software_fingerprint")? as u64,
    })
}

pub(crate) fn enroll_secret(row: &impl ModelRow) -> Result<EnrollSecret, sqlx::Error> {
    Ok(EnrollSecret {
        secret: row.text("secret")?,
        team: row.opt_id("team_id")?.map(TeamId),
    })
}

pub(crate) fn user(row: &impl ModelRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.id("id")?),
        name: row.text("name")?,
        email: row.text("email")?,
        global_role: row.opt_text("global_role")?,
        teams: Vec::new(),
        api_only: row.flag("api_only")?,
        enabled: row.flag("enabled")?,
        force_password_reset: row.flag("force_password_reset")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn user_team(row: &impl ModelRow) -> Result<UserTeam, sqlx::Error> {
    Ok(UserTeam {
        team: TeamId(row.id("team_id")?),
        team_name: row.text("team_name")?,
        role: row.text("role")?,
    })
}

pub(crate) fn host(row: &impl ModelRow) -> Result<Host, sqlx::Error> {
    Ok(Host {
        id: HostId(row.id("id")?),
        osquery_host_id: row.text("osquery_host_id")?,
        uuid: row.text("uuid")?,
        hostname: row.text("hostname")?,
        computer_name: row.text("computer_name")?,
        platform: row.text("platform")?,
        platform_like: row.text("platform_like")?,
        os_version: row.text("os_version")?,
        build: row.text("build")?,
        code_name: row.text("code_name")?,
        osquery_version: row.text("osquery_version")?,
        cpu_type: row.text("cpu_type")?,
        cpu_brand: row.text("cpu_brand")?,
        cpu_physical_cores: row.int("cpu_physical_cores")?,
        cpu_logical_cores: row.int("cpu_logical_cores")?,
        memory: row.int("memory")?,
        hardware_vendor: row.text("hardware_vendor")?,
        hardware_model: row.text("hardware_model")?,
        hardware_version: row.text("hardware_version")?,
        hardware_serial: row.text("hardware_serial")?,
        primary_ip: row.text("primary_ip")?,
        primary_mac: row.text("primary_mac")?,
        uptime_seconds: row.int("uptime")?,
        distributed_interval: row.int("distributed_interval")?,
        config_tls_refresh: row.int("config_tls_refresh")?,
        logger_tls_period: row.int("logger_tls_period")?,
        team: row.opt_id("team_id")?.map(TeamId),
        team_name: row.opt_text("team_name")?,
        seen_time: row.int("seen_time")?,
        detail_updated_at: row.int("detail_updated_at")?,
        refetch_requested: row.flag("refetch_requested")?,
        created_at: row.int("created_at")?,
        last_enrolled_at: row.int("last_enrolled_at")?,
        software_updated_at: row.int("software_updated_at")?,
        updated_at: row.int("updated_at")?,
        orbit_version: row.opt_text("orbit_version")?,
        fleet_desktop_version: row.opt_text("fleet_desktop_version")?,
        scripts_enabled: row.opt_flag("scripts_enabled")?,
        custom_email: row.opt_text("custom_email")?,
        failing_policies_count: row.int("failing_policies_count")?.max(0) as u64,
    })
}

/// Columns: the label's own plus `host_count`.
pub(crate) fn label(row: &impl ModelRow) -> Result<Label, sqlx::Error> {
    let label_type = row.text("label_type")?;
    let membership = row.text("label_membership_type")?;
    Ok(Label {
        id: LabelId(row.id("id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        query: row.text("query")?,
        platform: row.text("platform")?,
        label_type: if label_type == "builtin" {
            LabelType::Builtin
        } else {
            LabelType::Regular
        },
        membership: if membership == "manual" {
            LabelMembership::Manual
        } else {
            LabelMembership::Dynamic
        },
        host_count: row.int("host_count")?.max(0) as u64,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn label_query(row: &impl ModelRow) -> Result<LabelQuery, sqlx::Error> {
    Ok(LabelQuery {
        id: LabelId(row.id("id")?),
        query: row.text("query")?,
        platform: row.text("platform")?,
    })
}

/// Columns: the team's own plus `user_count` and `host_count`; secrets are loaded apart.
pub(crate) fn team(row: &impl ModelRow) -> Result<Team, sqlx::Error> {
    Ok(Team {
        id: TeamId(row.id("id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        user_count: row.int("user_count")?.max(0) as u64,
        host_count: row.int("host_count")?.max(0) as u64,
        secrets: Vec::new(),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn team_secret(row: &impl ModelRow) -> Result<TeamSecret, sqlx::Error> {
    Ok(TeamSecret {
        secret: row.text("secret")?,
        team: row.opt_id("team_id")?.map(TeamId),
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn saved_query(row: &impl ModelRow) -> Result<SavedQuery, sqlx::Error> {
    Ok(SavedQuery {
        id: QueryId(row.id("id")?),
        team: row.opt_id("team_id")?.map(TeamId),
        fields: QueryFields {
            name: row.text("name")?,
            description: row.text("description")?,
            query: row.text("query")?,
            interval: row.int("interval")?.clamp(0, u32::MAX as i64) as u32,
            platform: row.text("platform")?,
            min_osquery_version: row.text("min_osquery_version")?,
            automations_enabled: row.flag("automations_enabled")?,
            logging: row.text("logging")?,
            observer_can_run: row.flag("observer_can_run")?,
            discard_data: row.flag("discard_data")?,
        },
        author: row.opt_id("author_id")?.map(UserId),
        author_name: row.text("author_name")?,
        author_email: row.text("author_email")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// Columns: `name, query, description, resolution, platform, critical`.
fn policy_fields(row: &impl ModelRow) -> Result<PolicyFields, sqlx::Error> {
    Ok(PolicyFields {
        name: row.text("name")?,
        query: row.text("query")?,
        description: row.text("description")?,
        resolution: row.text("resolution")?,
        platform: row.text("platform")?,
        critical: row.flag("critical")?,
    })
}

/// Columns: `id, team_id`, the policy fields, `author_id, author_name, author_email,
/// created_at, updated_at, passing_host_count, failing_host_count, counts_updated_at`.
pub(crate) fn policy(row: &impl ModelRow) -> Result<Policy, sqlx::Error> {
    Ok(Policy {
        id: PolicyId(row.id("id")?),
        team: row.opt_id("team_id")?.map(TeamId),
        fields: policy_fields(row)?,
        author: row.opt_id("author_id")?.map(UserId),
        author_name: row.text("author_name")?,
        author_email: row.text("author_email")?,
        passing_host_count: row.int("passing_host_count")?.max(0) as u64,
        failing_host_count: row.int("failing_host_count")?.max(0) as u64,
        counts_updated_at: row.opt_int("counts_updated_at")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// Columns: `id, team_id`, the policy fields, `passes` (1, 0 or NULL).
pub(crate) fn host_policy(row: &impl ModelRow) -> Result<HostPolicy, sqlx::Error> {
    Ok(HostPolicy {
        id: PolicyId(row.id("id")?),
        team: row.opt_id("team_id")?.map(TeamId),
        fields: policy_fields(row)?,
        response: row.opt_int("passes")?.map(|passes| passes != 0),
    })
}

pub(crate) fn activity(row: &impl ModelRow) -> Result<Activity, StoreError> {
    let read = |e: sqlx::Error| StoreError::Data(e.to_string());
    let details = row.text("details").map_err(read)?;
    Ok(Activity {
        id: row.id("id").map_err(read)?,
        actor: row.opt_id("actor_id").map_err(read)?.map(UserId),
        actor_full_name: row.opt_text("actor_full_name").map_err(read)?,
        actor_email: row.opt_text("actor_email").map_err(read)?,
        kind: row.text("type").map_err(read)?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Data(format!("activity details: {e}")))?,
        created_at: row.int("created_at").map_err(read)?,
    })
}
