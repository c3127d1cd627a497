//! `AgentConfigs`: the osquery config each host pulls, serialised once per change and shared.
//!
//! Today every host gets the global default agent options. Scheduled queries, team options and
//! platform overrides will make this a map keyed by (team, platform); hosts already ask by
//! their record, so callers will not change.

use axum::body::Bytes;
use parking_lot::RwLock;
use serde_json::{Value, json};

use flotilla_engine::record::HostRecord;

/// The agent options a new install starts with (Fleet's defaults, with `config_refresh` so
/// hosts that honour it pick up changes within a minute).
pub fn default_agent_options() -> Value {
    json!({
        "options": {
            "pack_delimiter": "/",
            "logger_tls_period": 10,
            "distributed_plugin": "tls",
            "disable_distributed": false,
            "logger_tls_endpoint": "/api/osquery/log",
            "distributed_interval": 10,
            "distributed_tls_max_attempts": 3,
            "config_refresh": 60
        },
        "decorators": {
            "load": [
                "SELECT uuid AS host_uuid FROM system_info;",
                "SELECT hostname AS hostname FROM system_info;"
            ]
        }
    })
}

pub struct AgentConfigs {
    global: RwLock<Bytes>,
}

impl AgentConfigs {
    pub fn new(agent_options: &Value) -> AgentConfigs {
        AgentConfigs {
            global: RwLock::new(build(agent_options)),
        }
    }

    /// The serialised config for this host: a cheap clone of shared bytes.
    pub fn for_host(&self, _host: &HostRecord) -> Bytes {
        self.global.read().clone()
    }
}

/// The osquery config object for a set of agent options: `options`, `decorators` and the
/// rest as given, with `schedule` and `packs` always present.
fn build(agent_options: &Value) -> Bytes {
    let mut config = match agent_options {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    config.entry("options").or_insert_with(|| json!({}));
    config.entry("schedule").or_insert_with(|| json!({}));
    config.entry("packs").or_insert_with(|| json!({}));
    config.entry("decorators").or_insert_with(|| json!({}));
    Bytes::from(serde_json::to_vec(&config).expect("a JSON map serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_has_the_options_osquery_needs() {
        let bytes = build(&default_agent_options());
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        for option in [
            "distributed_interval",
            "distributed_tls_max_attempts",
            "logger_tls_period",
            "config_refresh",
        ] {
            assert!(config["options"][option].is_u64(), "{option} missing");
        }
        assert!(config["schedule"].is_object());
        assert!(config["packs"].is_object());
        assert_eq!(config["decorators"]["load"].as_array().unwrap().len(), 2);
    }
}
