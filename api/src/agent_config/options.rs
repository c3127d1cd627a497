//! Agent options: what admins set (globally and per team) and what osquery receives from it.
//!
//! The document has Fleet's shape: `config` (an osquery config: `options`, `decorators`,
//! `schedule`, `packs`, `file_paths`, …), `overrides.platforms.<platform>` (a whole config that
//! replaces `config` for hosts of that platform), and `command_line_flags` (for agents that
//! manage osquery's flags themselves; never sent in the config). [`validate`] checks every key
//! and value type the way Fleet does for the osquery version it validates against; anything
//! unknown is refused with the path it was found at, and — when the key belongs elsewhere —
//! where it should go.

use serde_json::{Map, Value};

/// Fleet's agent options for a new install.
pub fn default_agent_options() -> Value {
    serde_json::json!({
        "config": {
            "options": {
                "pack_delimiter": "/",
                "logger_tls_period": 10,
                "distributed_plugin": "tls",
                "disable_distributed": false,
                "logger_tls_endpoint": "/api/osquery/log",
                "distributed_interval": 10,
                "distributed_tls_max_attempts": 3
            },
            "decorators": {
                "load": [
                    "SELECT uuid AS host_uuid FROM system_info;",
                    "SELECT hostname AS hostname FROM system_info;"
                ]
            }
        },
        "overrides": {},
        "command_line_flags": {}
    })
}

/// The config part for a host of `platform`: its platform override if there is one, else
/// `config` (whole replacement, no merge).
pub fn for_platform<'a>(agent_options: &'a Value, platform: &str) -> Option<&'a Value> {
    agent_options
        .get("overrides")
        .and_then(|o| o.get("platforms"))
        .and_then(|p| p.get(platform))
        .filter(|v| !v.is_null())
        .or_else(|| agent_options.get("config"))
}

/// The value type of an osquery flag.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Uint,
    Int,
}

use Kind::{Bool, Int, Str, Uint};

/// Flags osquery accepts in a config's `options` (osquery 5.19, as Fleet validates them,
/// including the platform-specific and undocumented ones Fleet adds).
const OPTIONS: &[(&str, Kind)] = &[
    ("audit_allow_config", Bool),
    ("audit_allow_fim_events", Bool),
    ("audit_allow_process_events", Bool),
    ("audit_allow_sockets", Bool),
    ("audit_allow_user_events", Bool),
    ("augeas_lenses", Str),
    ("aws_access_key_id", Str),
    ("aws_debug", Bool),
    ("aws_disable_imdsv1_fallback", Bool),
    ("aws_enable_proxy", Bool),
    ("aws_firehose_endpoint", Str),
    ("aws_firehose_period", Uint),
    ("aws_firehose_region", Str),
    ("aws_firehose_stream", Str),
    ("aws_imdsv2_request_attempts", Uint),
    ("aws_imdsv2_request_interval", Uint),
    ("aws_kinesis_disable_log_status", Bool),
    ("aws_kinesis_endpoint", Str),
    ("aws_kinesis_period", Uint),
    ("aws_kinesis_random_partition_key", Bool),
    ("aws_kinesis_region", Str),
    ("aws_kinesis_stream", Str),
    ("aws_profile_name", Str),
    ("aws_proxy_host", Str),
    ("aws_proxy_password", Str),
    ("aws_proxy_port", Uint),
    ("aws_proxy_scheme", Str),
    ("aws_proxy_username", Str),
    ("aws_region", Str),
    ("aws_secret_access_key", Str),
    ("aws_session_token", Str),
    ("aws_sts_arn_role", Str),
    ("aws_sts_region", Str),
    ("aws_sts_session_name", Str),
    ("aws_sts_timeout", Uint),
    ("buffered_log_max", Uint),
    ("decorations_top_level", Bool),
    ("disable_audit", Bool),
    ("disable_caching", Bool),
    ("disable_database", Bool),
    ("disable_decorators", Bool),
    ("disable_distributed", Bool),
    ("disable_events", Bool),
    ("disable_hash_cache", Bool),
    ("disable_logging", Bool),
    ("distributed_denylist_duration", Uint),
    ("distributed_interval", Uint),
    ("distributed_loginfo", Bool),
    ("distributed_plugin", Str),
    ("distributed_tls_max_attempts", Uint),
    ("distributed_tls_read_endpoint", Str),
    ("distributed_tls_write_endpoint", Str),
    ("docker_socket", Str),
    ("enable_file_events", Bool),
    ("enable_foreign", Bool),
    ("enable_numeric_monitoring", Bool),
    ("ephemeral", Bool),
    ("es_fim_enable_open_events", Bool),
    ("events_expiry", Uint),
    ("events_max", Uint),
    ("events_optimize", Bool),
    ("experiment_list", Str),
    ("extensions_default_index", Bool),
    ("hash_cache_max", Uint),
    ("host_identifier", Str),
    ("ignore_table_exceptions", Bool),
    ("keychain_access_cache", Bool),
    ("keychain_access_interval", Uint),
    ("logger_event_type", Bool),
    ("logger_kafka_acks", Str),
    ("logger_kafka_brokers", Str),
    ("logger_kafka_compression", Str),
    ("logger_kafka_topic", Str),
    ("logger_min_status", Int),
    ("logger_min_stderr", Int),
    ("logger_numerics", Bool),
    ("logger_path", Str),
    ("logger_rotate", Bool),
    ("logger_rotate_max_files", Uint),
    ("logger_rotate_size", Uint),
    ("logger_snapshot_event_type", Bool),
    ("logger_syslog_facility", Int),
    ("logger_syslog_prepend_cee", Bool),
    ("logger_tls_backoff_max", Uint),
    ("logger_tls_compress", Bool),
    ("logger_tls_endpoint", Str),
    ("logger_tls_max_lines", Uint),
    ("logger_tls_max_linesize", Uint),
    ("logger_tls_period", Uint),
    ("nullvalue", Str),
    ("numeric_monitoring_filesystem_path", Str),
    ("numeric_monitoring_plugins", Str),
    ("numeric_monitoring_pre_aggregation_time", Uint),
    ("pack_delimiter", Str),
    ("pack_refresh_interval", Uint),
    ("read_max", Uint),
    ("schedule_default_interval", Uint),
    ("schedule_epoch", Uint),
    ("schedule_lognames", Bool),
    ("schedule_max_drift", Uint),
    ("schedule_reload", Uint),
    ("schedule_splay_percent", Uint),
    ("schedule_timeout", Uint),
    ("specified_identifier", Str),
    ("table_delay", Uint),
    ("thrift_string_size_limit", Int),
    ("thrift_timeout", Uint),
    ("thrift_verbose", Bool),
    ("tls_disable_status_log", Bool),
    ("verbose", Bool),
    ("yara_delay", Uint),
    ("yara_sigurl_authenticate", Bool),
    // Linux.
    ("audit_allow_accept_socket_events", Bool),
    ("audit_allow_apparmor_events", Bool),
    ("audit_allow_failed_socket_events", Bool),
    ("audit_allow_fork_process_events", Bool),
    ("audit_allow_kill_process_events", Bool),
    ("audit_allow_null_accept_socket_events", Bool),
    ("audit_allow_seccomp_events", Bool),
    ("audit_allow_selinux_events", Bool),
    ("audit_backlog_limit", Int),
    ("audit_backlog_wait_time", Int),
    ("audit_force_reconfigure", Bool),
    ("audit_force_unconfigure", Bool),
    ("audit_persist", Bool),
    ("bpf_buffer_storage_size", Uint),
    ("bpf_perf_event_array_exp", Uint),
    ("disable_memory", Bool),
    ("enable_bpf_events", Bool),
    ("enable_syslog", Bool),
    ("experiments_linuxevents_circular_buffer_size", Uint),
    ("experiments_linuxevents_perf_output_size", Uint),
    ("hardware_disabled_types", Str),
    ("keep_container_worker_open", Bool),
    ("lxd_socket", Str),
    ("malloc_trim_threshold", Uint),
    ("syslog_events_expiry", Uint),
    ("syslog_events_max", Uint),
    ("syslog_pipe_path", Str),
    ("syslog_rate_limit", Uint),
    // Windows.
    ("users_service_delay", Uint),
    ("users_service_interval", Uint),
    ("groups_service_delay", Uint),
    ("groups_service_interval", Uint),
    ("enable_ntfs_event_publisher", Bool),
    ("enable_powershell_events_subscriber", Bool),
    ("enable_process_etw_events", Bool),
    ("enable_windows_events_publisher", Bool),
    ("enable_windows_events_subscriber", Bool),
    ("etw_kernel_trace_buffer_size", Uint),
    ("etw_kernel_trace_flush_timer", Uint),
    ("etw_kernel_trace_maximum_buffers", Uint),
    ("etw_kernel_trace_minimum_buffers", Uint),
    ("etw_userspace_trace_buffer_size", Uint),
    ("etw_userspace_trace_flush_timer", Uint),
    ("etw_userspace_trace_maximum_buffers", Uint),
    ("etw_userspace_trace_minimum_buffers", Uint),
    ("ntfs_event_publisher_debug", Bool),
    ("windows_event_channels", Str),
    ("usn_journal_reader_debug", Bool),
    // macOS.
    ("disable_endpointsecurity", Bool),
    ("disable_endpointsecurity_fim", Bool),
    ("enable_keyboard_events", Bool),
    ("enable_mouse_events", Bool),
    ("es_fim_mute_path_literal", Str),
    ("es_fim_mute_path_prefix", Str),
    // Not listed by `osqueryd --help`, accepted all the same.
    ("alsologtostderr", Bool),
    ("events_streaming_plugin", Str),
    ("ignore_registry_exceptions", Bool),
    ("logbufsecs", Int),
    ("log_dir", Str),
    ("max_log_size", Int),
    ("minloglevel", Int),
    ("stop_logging_if_full_disk", Bool),
    ("allow_unsafe", Bool),
    ("tls_dump", Bool),
    ("audit_debug", Bool),
    ("audit_fim_debug", Bool),
    ("audit_show_partial_fim_events", Bool),
    ("audit_show_untracked_res_warnings", Bool),
    ("audit_fim_show_accesses", Bool),
];

/// Flags osquery takes only on its command line (in addition to every option above).
const COMMAND_LINE_ONLY: &[(&str, Kind)] = &[
    ("alarm_timeout", Uint),
    ("aws_enforce_fips", Bool),
    ("carver_block_size", Uint),
    ("carver_compression", Bool),
    ("carver_continue_endpoint", Str),
    ("carver_disable_function", Bool),
    ("carver_expiry", Uint),
    ("carver_start_endpoint", Str),
    ("config_accelerated_refresh", Uint),
    ("config_check", Bool),
    ("config_dump", Bool),
    ("config_enable_backup", Bool),
    ("config_path", Str),
    ("config_plugin", Str),
    ("config_refresh", Uint),
    ("config_tls_endpoint", Str),
    ("config_tls_max_attempts", Uint),
    ("daemonize", Bool),
    ("database_dump", Bool),
    ("database_path", Str),
    ("disable_carver", Bool),
    ("disable_enrollment", Bool),
    ("disable_extensions", Bool),
    ("disable_reenrollment", Bool),
    ("disable_tables", Str),
    ("disable_watchdog", Bool),
    ("enable_extensions_watchdog", Bool),
    ("enable_tables", Str),
    ("enable_watchdog_debug", Bool),
    ("enroll_always", Bool),
    ("enroll_secret_env", Str),
    ("enroll_secret_path", Str),
    ("enroll_tls_endpoint", Str),
    ("extensions_autoload", Str),
    ("extensions_interval", Str),
    ("extensions_require", Str),
    ("extensions_socket", Str),
    ("extensions_timeout", Str),
    ("force", Bool),
    ("install", Bool),
    ("logger_mode", Str),
    ("logger_plugin", Str),
    ("logger_stderr", Bool),
    ("logtostderr", Bool),
    ("pidfile", Str),
    ("proxy_hostname", Str),
    ("stderrthreshold", Int),
    ("tls_client_cert", Str),
    ("tls_client_key", Str),
    ("tls_enroll_max_attempts", Uint),
    ("tls_enroll_max_interval", Uint),
    ("tls_hostname", Str),
    ("tls_server_certs", Str),
    ("tls_session_reuse", Bool),
    ("tls_session_timeout", Uint),
    ("uninstall", Bool),
    ("watchdog_delay", Uint),
    ("watchdog_forced_shutdown_delay", Uint),
    ("watchdog_latency_limit", Uint),
    ("watchdog_level", Int),
    ("watchdog_memory_limit", Uint),
    ("watchdog_utilization_limit", Uint),
];

/// Command-line flags agent options may not set, because they break the agent's enrollment.
const FORBIDDEN_FLAGS: &[&str] = &["host_identifier", "extensions_autoload", "database_path"];

/// Keys of the agent options document itself.
const TOP_LEVEL: &[&str] = &[
    "config",
    "overrides",
    "command_line_flags",
    "extensions",
    "script_execution_timeout",
    "update_channels",
];

/// Keys of an osquery config (`config` or a platform override).
const CONFIG_KEYS: &[&str] = &[
    "options",
    "schedule",
    "packs",
    "file_paths",
    "file_accesses",
    "file_paths_query",
    "exclude_paths",
    "yara",
    "prometheus_targets",
    "views",
    "decorators",
    "auto_table_construction",
    "events",
];

const MAX_SCRIPT_EXECUTION_TIMEOUT: u64 = 3600;

fn option_kind(name: &str) -> Option<Kind> {
    OPTIONS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

fn flag_kind(name: &str) -> Option<Kind> {
    option_kind(name).or_else(|| {
        COMMAND_LINE_ONLY
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    })
}

/// Where an unknown key would belong, for the error message.
fn proper_place(key: &str) -> Option<&'static str> {
    if TOP_LEVEL.contains(&key) {
        Some("top level")
    } else if CONFIG_KEYS.contains(&key) {
        Some("\"config\"")
    } else if option_kind(key).is_some() {
        Some("\"config.options\"")
    } else if flag_kind(key).is_some() {
        Some("\"command_line_flags\"")
    } else if key == "platforms" {
        Some("\"overrides\"")
    } else {
        None
    }
}

/// Prefixes an error with the config it was found in.
fn ctx<T>(context: &str, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|e| format!("{context}{e}"))
}

fn unknown_key(context: &str, path: &str, key: &str) -> String {
    match proper_place(key) {
        Some(place) => format!("{context}\"{key}\" should be part of the {place} object"),
        None => format!("{context}unknown field \"{key}\" in {path}"),
    }
}

fn check_kind(path: &str, value: &Value, kind: Kind) -> Result<(), String> {
    let fits = value.is_null()
        || match kind {
            Bool => value.is_boolean(),
            Str => value.is_string(),
            Uint => value.is_u64(),
            Int => value.is_i64(),
        };
    if fits {
        return Ok(());
    }
    let wanted = match kind {
        Bool => "true or false",
        Str => "a string",
        Uint => "a whole number of 0 or more",
        Int => "a whole number",
    };
    Err(format!("{path} must be {wanted}, not {value}"))
}

fn object<'a>(path: &str, value: &'a Value) -> Result<Option<&'a Map<String, Value>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        other => Err(format!("{path} must be an object, not {other}")),
    }
}

fn strings(path: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
        other => Err(format!("{path} must be a list of strings, not {other}")),
    }
}

fn map_of_strings(path: &str, value: &Value) -> Result<(), String> {
    if let Some(map) = object(path, value)? {
        for (key, item) in map {
            strings(&format!("{path}.{key}"), item)?;
        }
    }
    Ok(())
}

fn fields(path: &str, value: &Value, known: &[&str]) -> Result<(), String> {
    if let Some(map) = object(path, value)?
        && let Some(key) = map.keys().find(|k| !known.contains(&k.as_str()))
    {
        return Err(format!("unknown field \"{key}\" in {path}"));
    }
    Ok(())
}

/// One osquery config: `config`, or a platform override. `context` prefixes messages.
fn validate_config(context: &str, path: &str, config: &Value) -> Result<(), String> {
    let Some(map) = object(path, config).map_err(|e| format!("{context}{e}"))? else {
        return Ok(());
    };
    for (key, value) in map {
        let at = format!("{path}.{key}");
        match key.as_str() {
            // Passed to osquery as given, as Fleet does.
            "schedule" | "packs" => {}
            "options" => validate_options(context, &at, value)?,
            "file_paths" | "file_paths_query" | "exclude_paths" => {
                ctx(context, map_of_strings(&at, value))?
            }
            "file_accesses" => ctx(context, strings(&at, value))?,
            "views" => {
                if let Some(views) = ctx(context, object(&at, value))? {
                    for (name, view) in views {
                        if !view.is_string() && !view.is_null() {
                            return Err(format!("{context}{at}.{name} must be a string"));
                        }
                    }
                }
            }
            "decorators" => {
                ctx(context, fields(&at, value, &["load", "always", "interval"]))?;
                if let Some(decorators) = value.as_object() {
                    for list in ["load", "always"] {
                        if let Some(item) = decorators.get(list) {
                            ctx(context, strings(&format!("{at}.{list}"), item))?;
                        }
                    }
                    if let Some(interval) = decorators.get("interval") {
                        ctx(context, map_of_strings(&format!("{at}.interval"), interval))?;
                    }
                }
            }
            "yara" => {
                ctx(
                    context,
                    fields(&at, value, &["signatures", "file_paths", "signature_urls"]),
                )?;
                if let Some(yara) = value.as_object() {
                    for section in ["signatures", "file_paths"] {
                        if let Some(item) = yara.get(section) {
                            ctx(context, map_of_strings(&format!("{at}.{section}"), item))?;
                        }
                    }
                    if let Some(urls) = yara.get("signature_urls") {
                        ctx(context, strings(&format!("{at}.signature_urls"), urls))?;
                    }
                }
            }
            "prometheus_targets" => {
                ctx(context, fields(&at, value, &["timeout", "urls"]))?;
                if let Some(targets) = value.as_object() {
                    if let Some(timeout) = targets.get("timeout") {
                        ctx(context, check_kind(&format!("{at}.timeout"), timeout, Int))?;
                    }
                    if let Some(urls) = targets.get("urls") {
                        ctx(context, strings(&format!("{at}.urls"), urls))?;
                    }
                }
            }
            "events" => {
                ctx(
                    context,
                    fields(&at, value, &["disable_subscribers", "enable_subscribers"]),
                )?;
                if let Some(events) = value.as_object() {
                    for list in ["disable_subscribers", "enable_subscribers"] {
                        if let Some(item) = events.get(list) {
                            ctx(context, strings(&format!("{at}.{list}"), item))?;
                        }
                    }
                }
            }
            "auto_table_construction" => validate_auto_tables(context, &at, value)?,
            other => return Err(unknown_key(context, path, other)),
        }
    }
    Ok(())
}

/// `options`: every flag known to osquery with a value of its type; `logger_tls_endpoint` a
/// path.
fn validate_options(context: &str, at: &str, value: &Value) -> Result<(), String> {
    let Some(options) = ctx(context, object(at, value))? else {
        return Ok(());
    };
    for (name, option) in options {
        match option_kind(name) {
            Some(kind) => ctx(context, check_kind(&format!("{at}.{name}"), option, kind))?,
            None => return Err(unknown_key(context, at, name)),
        }
    }
    if let Some(endpoint) = options.get("logger_tls_endpoint").and_then(Value::as_str)
        && !endpoint.is_empty()
        && !endpoint.starts_with('/')
    {
        return Err(format!(
            "{context}options.logger_tls_endpoint must be a path starting with '/': \"{endpoint}\""
        ));
    }
    Ok(())
}

/// `auto_table_construction`: tables with a query, a path, columns and a platform.
fn validate_auto_tables(context: &str, at: &str, value: &Value) -> Result<(), String> {
    if let Some(tables) = ctx(context, object(at, value))? {
        for (name, table) in tables {
            let table_at = format!("{at}.{name}");
            ctx(
                context,
                fields(&table_at, table, &["query", "path", "columns", "platform"]),
            )?;
            if let Some(table) = table.as_object() {
                for text in ["query", "path", "platform"] {
                    if let Some(item) = table.get(text) {
                        ctx(
                            context,
                            check_kind(&format!("{table_at}.{text}"), item, Str),
                        )?;
                    }
                }
                if let Some(columns) = table.get("columns") {
                    ctx(context, strings(&format!("{table_at}.columns"), columns))?;
                }
            }
        }
    }
    Ok(())
}

/// Checks a whole agent options document. The error says what is wrong and where.
pub fn validate(agent_options: &Value) -> Result<(), String> {
    let Some(map) = object("agent options", agent_options)? else {
        return Ok(());
    };
    for (key, value) in map {
        match key.as_str() {
            "config" => validate_config("common config: ", "config", value)?,
            "overrides" => {
                let Some(overrides) = object("overrides", value)? else {
                    continue;
                };
                for (key, platforms) in overrides {
                    if key != "platforms" {
                        return Err(unknown_key("", "overrides", key));
                    }
                    let Some(platforms) = object("overrides.platforms", platforms)? else {
                        continue;
                    };
                    for (platform, config) in platforms {
                        if config.is_null() {
                            return Err("platforms cannot be null. To remove platform overrides omit overrides from agent options.".into());
                        }
                        validate_config(
                            &format!("{platform} platform config: "),
                            &format!("overrides.platforms.{platform}"),
                            config,
                        )?;
                    }
                }
            }
            "command_line_flags" => {
                let Some(flags) = object("command_line_flags", value)? else {
                    continue;
                };
                for (name, flag) in flags {
                    let Some(kind) = flag_kind(name) else {
                        return Err(unknown_key(
                            "command-line flags: ",
                            "command_line_flags",
                            name,
                        ));
                    };
                    check_kind(&format!("command_line_flags.{name}"), flag, kind)?;
                    let set = match flag {
                        Value::Null => false,
                        Value::String(s) => !s.is_empty(),
                        _ => true,
                    };
                    if set && FORBIDDEN_FLAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "The --{name} flag isn't supported. Please remove this flag."
                        ));
                    }
                }
            }
            "script_execution_timeout" => {
                check_kind("script_execution_timeout", value, Uint)?;
                if value
                    .as_u64()
                    .is_some_and(|t| t > MAX_SCRIPT_EXECUTION_TIMEOUT)
                {
                    return Err(format!(
                        "'script_execution_timeout' value exceeds limit. Maximum value is {MAX_SCRIPT_EXECUTION_TIMEOUT}"
                    ));
                }
            }
            "extensions" | "update_channels" => {
                object(key, value)?;
            }
            other => return Err(unknown_key("", "agent options", other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_is_valid() {
        validate(&default_agent_options()).unwrap();
    }

    #[test]
    fn unknown_options_are_refused_with_where_they_belong() {
        let err = validate(&json!({"config": {"options": {"no_such_flag": 1}}})).unwrap_err();
        assert!(err.contains("unknown field \"no_such_flag\""), "{err}");
        assert!(err.starts_with("common config: "), "{err}");

        let err = validate(&json!({"config": {"distributed_interval": 10}})).unwrap_err();
        assert_eq!(
            err,
            "common config: \"distributed_interval\" should be part of the \"config.options\" object"
        );

        let err = validate(&json!({"config": {"options": {"config_refresh": 60}}})).unwrap_err();
        assert!(err.contains("\"command_line_flags\""), "{err}");

        let err = validate(&json!({"options": {}})).unwrap_err();
        assert!(err.contains("\"config\" object"), "{err}");
    }

    #[test]
    fn value_types_are_checked() {
        let err =
            validate(&json!({"config": {"options": {"distributed_interval": "ten"}}})).unwrap_err();
        assert!(err.contains("config.options.distributed_interval"), "{err}");
        assert!(validate(&json!({"config": {"options": {"distributed_interval": -1}}})).is_err());
        assert!(validate(&json!({"config": {"options": {"verbose": "yes"}}})).is_err());
        assert!(validate(&json!({"config": {"decorators": {"load": [1]}}})).is_err());
        assert!(
            validate(&json!({"config": {"options": {"logger_tls_endpoint": "api/log"}}})).is_err()
        );
        validate(&json!({"config": {"options": {"logger_min_status": -1, "verbose": null}}}))
            .unwrap();
    }

    #[test]
    fn overrides_and_flags_are_checked() {
        validate(&json!({
            "config": {"options": {}},
            "overrides": {"platforms": {"darwin": {"options": {"distributed_interval": 5}}}},
            "command_line_flags": {"config_refresh": 30, "verbose": true}
        }))
        .unwrap();
        let err = validate(&json!({"overrides": {"platforms": {"darwin": {"options": {"x": 1}}}}}))
            .unwrap_err();
        assert!(err.starts_with("darwin platform config: "), "{err}");
        assert!(validate(&json!({"overrides": {"platforms": {"darwin": null}}})).is_err());
        assert!(validate(&json!({"overrides": {"linux": {}}})).is_err());
        let err =
            validate(&json!({"command_line_flags": {"host_identifier": "uuid"}})).unwrap_err();
        assert!(err.contains("--host_identifier"), "{err}");
        assert!(validate(&json!({"command_line_flags": {"nope": 1}})).is_err());
        assert!(validate(&json!({"script_execution_timeout": 7200})).is_err());
        assert!(validate(&json!("text")).is_err());
    }

    #[test]
    fn platform_overrides_replace_the_config() {
        let options = json!({
            "config": {"options": {"distributed_interval": 10}},
            "overrides": {"platforms": {"darwin": {"options": {"distributed_interval": 5}}}}
        });
        assert_eq!(
            for_platform(&options, "darwin").unwrap()["options"]["distributed_interval"],
            5
        );
        assert_eq!(
            for_platform(&options, "ubuntu").unwrap()["options"]["distributed_interval"],
            10
        );
    }
}
