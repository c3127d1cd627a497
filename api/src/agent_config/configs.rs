//! `AgentConfigs`: the osquery config each host pulls, built once per change per (team,
//! platform) and served from memory as shared bytes.
//!
//! What goes in is loaded from the store as a whole ([`ConfigInputs`]) whenever an admin
//! changes agent options or a saved query; hosts never cause a database read. The build follows
//! Fleet: the team's agent options if the team has any, else the global ones; of those the
//! platform override if there is one, else `config`; then the `Global` pack of global
//! scheduled queries and the `team-<id>` pack of the host's team, keyed by query name.
//!
//! The same inputs answer "which saved query is `pack/Global/<name>`?" for the log endpoint
//! ([`AgentConfigs::scheduled`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use dashmap::DashMap;
use flotilla_engine::TeamId;
use flotilla_engine::record::HostRecord;
use flotilla_engine::store::StoreError;
use flotilla_storage::admin::{ConfigStore, QueryId, QueryStore, SavedQuery};
use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use crate::agent_config::options::{default_agent_options, for_platform};

/// What Fleet's rules need to know about a scheduled query when its results arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledQuery {
    pub id: QueryId,
    pub team: Option<TeamId>,
    pub automations_enabled: bool,
    /// Snapshot logging and not `discard_data`: its results fill the query report.
    pub keeps_report: bool,
}

/// Everything a config is built from, loaded from the store as one consistent set.
#[derive(Debug, Default)]
pub struct ConfigInputs {
    /// The global agent options document (`config`, `overrides`, `command_line_flags`).
    pub global_options: Value,
    /// Teams with agent options of their own.
    pub team_options: HashMap<TeamId, Value>,
    /// The `queries` object of the `Global` pack (empty: no pack).
    global_pack: Map<String, Value>,
    team_packs: HashMap<TeamId, Map<String, Value>>,
    /// Every query with an interval, by (team, name), for attributing results.
    scheduled: HashMap<(Option<TeamId>, String), ScheduledQuery>,
}

impl ConfigInputs {
    /// Inputs from agent options and the saved queries with an interval.
    pub fn new(
        global_options: Value,
        team_options: HashMap<TeamId, Value>,
        queries: &[SavedQuery],
    ) -> ConfigInputs {
        let mut inputs = ConfigInputs {
            global_options,
            team_options,
            ..ConfigInputs::default()
        };
        for query in queries {
            let fields = &query.fields;
            if fields.interval == 0 {
                continue;
            }
            let snapshot = fields.logging == "snapshot";
            inputs.scheduled.insert(
                (query.team, fields.name.clone()),
                ScheduledQuery {
                    id: query.id,
                    team: query.team,
                    automations_enabled: fields.automations_enabled,
                    keeps_report: snapshot && !fields.discard_data,
                },
            );
            // Fleet's rule: a query goes to hosts when something consumes its results —
            // automations (the result log), or a report (snapshot logging, data kept).
            let keeps_report = snapshot && !fields.discard_data;
            if !fields.automations_enabled && !keeps_report {
                continue;
            }
            let pack = match query.team {
                None => &mut inputs.global_pack,
                Some(team) => inputs.team_packs.entry(team).or_default(),
            };
            pack.insert(fields.name.clone(), query_content(query));
        }
        inputs
    }
}

/// A scheduled query as a pack entry: `query`, `interval`, `platform` and `version` always
/// (possibly empty), then `snapshot: true`, `removed: true` or `removed: false` by logging.
fn query_content(query: &SavedQuery) -> Value {
    let fields = &query.fields;
    let mut content = json!({
        "query": fields.query,
        "interval": fields.interval,
        "platform": fields.platform,
        "version": fields.min_osquery_version,
    });
    let entry = content.as_object_mut().expect("an object literal");
    match fields.logging.as_str() {
        "differential" => entry.insert("removed".into(), Value::Bool(true)),
        "differential_ignore_removals" => entry.insert("removed".into(), Value::Bool(false)),
        _ => entry.insert("snapshot".into(), Value::Bool(true)),
    };
    content
}

impl ConfigInputs {
    /// The agent options a host of `team` gets: its team's if the team has any, else the
    /// global ones.
    pub fn agent_options(&self, team: Option<TeamId>) -> &Value {
        team.and_then(|t| self.team_options.get(&t))
            .filter(|options| options.as_object().is_some_and(|o| !o.is_empty()))
            .unwrap_or(&self.global_options)
    }
}

/// The osquery config for a host of `team` and `platform`, as a JSON object.
pub fn build_config(inputs: &ConfigInputs, team: Option<TeamId>, platform: &str) -> Value {
    let agent_options = inputs.agent_options(team);
    let mut config = match for_platform(agent_options, platform) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut packs = Map::new();
    if !inputs.global_pack.is_empty() {
        packs.insert(
            "Global".into(),
            json!({ "queries": inputs.global_pack.clone() }),
        );
    }
    if let Some(team) = team
        && let Some(queries) = inputs.team_packs.get(&team).filter(|q| !q.is_empty())
    {
        packs.insert(
            format!("team-{team}"),
            json!({ "queries": queries.clone() }),
        );
    }
    if !packs.is_empty() {
        config.insert("packs".into(), Value::Object(packs));
    }
    Value::Object(config)
}

/// Serialised configs by (team, platform), each tagged with the generation it was built from.
type Built = DashMap<(Option<TeamId>, Box<str>), (u64, Bytes)>;

pub struct AgentConfigs {
    /// Replaced as a whole on every change; `generation` counts the replacements.
    inputs: RwLock<(u64, Arc<ConfigInputs>)>,
    /// Serialised configs by (team, platform), each tagged with the generation it was built
    /// from; an entry of an older generation is rebuilt on the next pull.
    built: Built,
    /// Orbit's configs, cached the same way.
    orbit_built: Built,
}

impl AgentConfigs {
    pub fn new(inputs: ConfigInputs) -> AgentConfigs {
        AgentConfigs {
            inputs: RwLock::new((1, Arc::new(inputs))),
            built: DashMap::new(),
            orbit_built: DashMap::new(),
        }
    }

    /// Configs from Fleet's default agent options and no scheduled query.
    pub fn with_defaults() -> AgentConfigs {
        AgentConfigs::new(ConfigInputs::new(
            default_agent_options(),
            HashMap::new(),
            &[],
        ))
    }

    /// Loads the inputs from the store: stored agent options (the defaults where none were
    /// ever saved) and every scheduled query.
    pub async fn load(
        options: &dyn ConfigStore,
        queries: &dyn QueryStore,
    ) -> Result<ConfigInputs, StoreError> {
        let global = options
            .agent_options(None)
            .await?
            .unwrap_or_else(default_agent_options);
        let teams = options.team_agent_options().await?.into_iter().collect();
        let queries = queries.scheduled_queries().await?;
        Ok(ConfigInputs::new(global, teams, &queries))
    }

    /// Reloads from the store after a change; the next pull of every host gets the new config.
    pub async fn reload(
        &self,
        options: &dyn ConfigStore,
        queries: &dyn QueryStore,
    ) -> Result<(), StoreError> {
        let inputs = AgentConfigs::load(options, queries).await?;
        self.replace(inputs);
        Ok(())
    }

    pub fn replace(&self, inputs: ConfigInputs) {
        let mut current = self.inputs.write();
        *current = (current.0 + 1, Arc::new(inputs));
    }

    /// The current inputs (agent options and scheduled queries).
    pub fn inputs(&self) -> Arc<ConfigInputs> {
        self.inputs.read().1.clone()
    }

    /// The saved query a result named `pack<d>{Global|team-<id>}<d><name>` belongs to.
    pub fn scheduled(&self, team: Option<TeamId>, name: &str) -> Option<ScheduledQuery> {
        self.inputs
            .read()
            .1
            .scheduled
            .get(&(team, name.to_owned()))
            .cloned()
    }

    /// The serialised config for this host: built at most once per change for its team and
    /// platform, then a cheap clone of shared bytes.
    pub fn for_host(&self, host: &HostRecord) -> Bytes {
        self.cached(&self.built, host, build_config)
    }

    /// Orbit's config for this host ([`build_orbit_config`](super::orbit::build_orbit_config)),
    /// cached like [`for_host`](AgentConfigs::for_host): thousands of orbits polling every
    /// 30 s cost a map lookup each.
    pub fn orbit_for_host(&self, host: &HostRecord) -> Bytes {
        self.cached(&self.orbit_built, host, |inputs, team, platform| {
            super::orbit::build_orbit_config(inputs.agent_options(team), platform)
        })
    }

    fn cached(
        &self,
        built: &Built,
        host: &HostRecord,
        build: fn(&ConfigInputs, Option<TeamId>, &str) -> Value,
    ) -> Bytes {
        let (generation, inputs) = {
            let current = self.inputs.read();
            (current.0, current.1.clone())
        };
        let key = (host.team, host.platform.clone());
        if let Some(entry) = built.get(&key)
            && entry.0 == generation
        {
            return entry.1.clone();
        }
        let config = build(&inputs, host.team, &host.platform);
        let bytes = Bytes::from(serde_json::to_vec(&config).expect("a JSON value serialises"));
        let mut entry = built.entry(key).or_insert((0, Bytes::new()));
        if entry.0 < generation {
            *entry = (generation, bytes.clone());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::admin::QueryFields;

    fn query(id: u64, team: Option<u64>, name: &str, interval: u32, logging: &str) -> SavedQuery {
        SavedQuery {
            id: QueryId(id),
            team: team.map(TeamId),
            fields: QueryFields {
                name: name.into(),
                description: String::new(),
                query: format!("SELECT {id};"),
                interval,
                platform: String::new(),
                min_osquery_version: String::new(),
                automations_enabled: false,
                logging: logging.into(),
                observer_can_run: false,
                discard_data: false,
            },
            author: None,
            author_name: String::new(),
            author_email: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_default_config_is_fleets() {
        let inputs = ConfigInputs::new(default_agent_options(), HashMap::new(), &[]);
        let config = build_config(&inputs, None, "ubuntu");
        assert_eq!(config, default_agent_options()["config"]);
        assert!(config.get("packs").is_none(), "no pack without queries");
    }

    #[test]
    fn packs_are_laid_out_as_fleet_does() {
        let mut versioned = query(4, None, "versioned", 60, "differential");
        versioned.fields.platform = "darwin,linux".into();
        versioned.fields.min_osquery_version = "5.4.0".into();
        versioned.fields.automations_enabled = true;
        let mut ignore = query(
            5,
            Some(7),
            "ignore removals",
            120,
            "differential_ignore_removals",
        );
        ignore.fields.automations_enabled = true;
        let queries = [
            query(1, None, "usb", 3600, "snapshot"),
            query(2, None, "unscheduled", 0, "snapshot"),
            // Differential without automations: nothing consumes its results.
            query(3, None, "unused", 60, "differential"),
            versioned,
            ignore,
            query(6, Some(8), "other team", 60, "snapshot"),
        ];
        let inputs = ConfigInputs::new(default_agent_options(), HashMap::new(), &queries);

        let config = build_config(&inputs, Some(TeamId(7)), "darwin");
        assert_eq!(
            config["packs"],
            json!({
                "Global": {"queries": {
                    "usb": {"query": "SELECT 1;", "interval": 3600, "platform": "", "version": "", "snapshot": true},
                    "versioned": {"query": "SELECT 4;", "interval": 60, "platform": "darwin,linux", "version": "5.4.0", "removed": true},
                }},
                "team-7": {"queries": {
                    "ignore removals": {"query": "SELECT 5;", "interval": 120, "platform": "", "version": "", "removed": false},
                }},
            })
        );
        let global_only = build_config(&inputs, None, "darwin");
        assert_eq!(
            global_only["packs"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["Global"]
        );
        let mut discarded = query(9, None, "discarded", 60, "snapshot");
        discarded.fields.discard_data = true;
        let inputs = ConfigInputs::new(default_agent_options(), HashMap::new(), &[discarded]);
        assert!(build_config(&inputs, None, "darwin").get("packs").is_none());
    }

    #[test]
    fn team_options_replace_global_ones_and_platforms_replace_config() {
        let team = json!({
            "config": {"options": {"distributed_interval": 30}},
            "overrides": {"platforms": {"windows": {"options": {"distributed_interval": 90}}}},
            "command_line_flags": {"verbose": true}
        });
        let inputs = ConfigInputs::new(
            default_agent_options(),
            HashMap::from([(TeamId(2), team)]),
            &[query(1, None, "q", 60, "snapshot")],
        );
        let linux = build_config(&inputs, Some(TeamId(2)), "ubuntu");
        assert_eq!(linux["options"], json!({"distributed_interval": 30}));
        assert!(
            linux.get("decorators").is_none(),
            "team options replace, not merge"
        );
        assert!(linux.get("command_line_flags").is_none());
        assert!(linux["packs"]["Global"].is_object());
        let windows = build_config(&inputs, Some(TeamId(2)), "windows");
        assert_eq!(windows["options"], json!({"distributed_interval": 90}));
        let other_team = build_config(&inputs, Some(TeamId(3)), "ubuntu");
        assert_eq!(
            other_team["options"],
            default_agent_options()["config"]["options"]
        );
    }

    #[test]
    fn configs_are_rebuilt_after_a_change_only() {
        let configs = AgentConfigs::with_defaults();
        let host = HostRecord {
            id: flotilla_engine::ids::HostId(1),
            node_key: Some(flotilla_engine::ids::NodeKey::generate()),
            identifier: "h".into(),
            hostname: "h".into(),
            platform: "ubuntu".into(),
            team: None,
            intervals: Default::default(),
            detail_updated_at: 0,
            refetch_requested: false,
            label_updated_at: 0,
            label_version: 0,
            policy_updated_at: 0,
            policy_version: 0,
            os_version: "".into(),
            software_fingerprint: 0,
        };
        let first = configs.for_host(&host);
        let again = configs.for_host(&host);
        assert_eq!(first.as_ptr(), again.as_ptr(), "served from memory");
        configs.replace(ConfigInputs::new(
            default_agent_options(),
            HashMap::new(),
            &[query(1, None, "q", 60, "snapshot")],
        ));
        let changed: Value = serde_json::from_slice(&configs.for_host(&host)).unwrap();
        assert!(changed["packs"]["Global"]["queries"]["q"].is_object());
        assert_eq!(configs.scheduled(None, "q").map(|q| q.id), Some(QueryId(1)));
        assert!(configs.scheduled(Some(TeamId(1)), "q").is_none());
    }
}
