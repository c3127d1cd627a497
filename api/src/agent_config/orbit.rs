//! What orbit pulls every 30 s (`POST /api/fleet/orbit/config`), built from the same agent
//! options as osquery's config: the team's options when the host's team has any, else the
//! global ones. [`AgentConfigs::orbit_for_host`](super::AgentConfigs::orbit_for_host) builds it
//! once per change per (team, platform) and serves it from memory.

use serde_json::{Map, Value, json};

/// Fleet's default for `script_execution_timeout` when agent options set none: five minutes.
pub const DEFAULT_SCRIPT_EXECUTION_TIMEOUT: u64 = 300;

/// The platform name extensions are published under for an osquery platform (`darwin` →
/// `macos`, every Linux family → `linux`); `None` where no extension platform applies.
fn extension_platform(platform: &str) -> Option<&'static str> {
    match platform {
        "darwin" => Some("macos"),
        "windows" => Some("windows"),
        "" | "freebsd" | "chrome" | "ios" | "ipados" | "android" => None,
        _ => Some("linux"),
    }
}

/// The orbit config for a host on `platform` whose agent options are `options` (its team's,
/// else the global ones), as Fleet's `OrbitConfig` JSON.
///
/// - `command_line_startup_flags`: the options' `command_line_flags` (orbit restarts osqueryd
///   with them when they change); omitted when empty.
/// - `extensions`: those published for the host's platform, without their `labels` field;
///   an extension limited to labels is not sent (membership is not known here, and sending
///   code meant for a few hosts to all of them is the worse mistake); omitted when none is left,
///   as orbit expects.
/// - `update_channels`: as the options set them, omitted when unset.
/// - `script_execution_timeout`: the options' value, else Fleet's default.
/// - `notifications`: nothing pending (Flotilla queues no scripts or installs yet).
pub fn build_orbit_config(options: &Value, platform: &str) -> Value {
    let mut config = Map::new();
    if let Some(flags) = options
        .get("command_line_flags")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
    {
        config.insert(
            "command_line_startup_flags".into(),
            Value::Object(flags.clone()),
        );
    }
    let wanted = extension_platform(platform);
    let extensions: Map<String, Value> = options
        .get("extensions")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, extension)| {
            let fields = extension.as_object()?;
            let for_platform = fields.get("platform").and_then(Value::as_str);
            let labelled = fields
                .get("labels")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty());
            if wanted.is_none() || for_platform != wanted || labelled {
                return None;
            }
            let mut fields = fields.clone();
            fields.remove("labels");
            Some((name.clone(), Value::Object(fields)))
        })
        .collect();
    if !extensions.is_empty() {
        config.insert("extensions".into(), Value::Object(extensions));
    }
    if let Some(channels) = options
        .get("update_channels")
        .filter(|c| c.as_object().is_some_and(|c| !c.is_empty()))
    {
        config.insert("update_channels".into(), channels.clone());
    }
    let timeout = options
        .get("script_execution_timeout")
        .and_then(Value::as_u64)
        .filter(|&t| t > 0)
        .unwrap_or(DEFAULT_SCRIPT_EXECUTION_TIMEOUT);
    config.insert("script_execution_timeout".into(), timeout.into());
    config.insert(
        "notifications".into(),
        json!({
            "pending_script_execution_ids": [],
            "pending_software_installer_ids": [],
        }),
    );
    Value::Object(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_extensions_and_channels_come_from_the_hosts_options() {
        let global = json!({
            "config": {},
            "command_line_flags": {"verbose": true},
            "extensions": {
                "hello_linux": {"channel": "stable", "platform": "linux"},
                "hello_mac": {"channel": "edge", "platform": "macos"},
                "for_some": {"channel": "stable", "platform": "linux", "labels": ["Servers"]},
            },
            "update_channels": {"orbit": "stable", "osqueryd": "5.12.1", "desktop": "edge"},
        });
        let team = json!({"config": {}, "script_execution_timeout": 1200});

        let linux = build_orbit_config(&global, "ubuntu");
        assert_eq!(
            linux["command_line_startup_flags"],
            json!({"verbose": true})
        );
        assert_eq!(
            linux["extensions"],
            json!({"hello_linux": {"channel": "stable", "platform": "linux"}})
        );
        assert_eq!(linux["update_channels"]["osqueryd"], "5.12.1");
        assert_eq!(linux["script_execution_timeout"], 300);
        assert_eq!(
            linux["notifications"]["pending_script_execution_ids"],
            json!([])
        );

        let mac = build_orbit_config(&global, "darwin");
        assert_eq!(mac["extensions"].as_object().unwrap().len(), 1);
        assert!(mac["extensions"].get("hello_mac").is_some());

        // Windows has no extension: the field is left out, as orbit expects.
        let windows = build_orbit_config(&global, "windows");
        assert!(windows.get("extensions").is_none());

        // A team with options of its own gets only those.
        let team = build_orbit_config(&team, "ubuntu");
        assert!(team.get("command_line_startup_flags").is_none());
        assert!(team.get("extensions").is_none());
        assert!(team.get("update_channels").is_none());
        assert_eq!(team["script_execution_timeout"], 1200);
    }
}
