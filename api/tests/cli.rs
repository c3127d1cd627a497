//! The `flotilla` command line as a user meets it: `--help` names every option with its
//! environment variable, and bad values get one clear line and a non-zero exit.

use std::process::Command;

fn flotilla(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .output()
        .expect("running flotilla")
}

#[test]
fn serve_help_lists_every_option_with_its_environment_variable() {
    let out = flotilla(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (option, env) in [
        ("--listen", "FLOTILLA_LISTEN"),
        ("--data-dir", "FLOTILLA_DATA_DIR"),
        ("--tls-cert", "FLOTILLA_TLS_CERT"),
        ("--tls-san", "FLOTILLA_TLS_SAN"),
        ("--no-tls", "FLOTILLA_NO_TLS"),
        ("--enroll-secret", "FLOTILLA_ENROLL_SECRET"),
        ("--admin-email", "FLOTILLA_ADMIN_EMAIL"),
        ("--log-format", "FLOTILLA_LOG_FORMAT"),
        ("--live-query-deadline", "FLOTILLA_LIVE_QUERY_DEADLINE"),
    ] {
        assert!(help.contains(option), "{option} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
    }
}

#[test]
fn top_level_help_and_version() {
    let out = flotilla(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
    let out = flotilla(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    let out = flotilla(&["serve", "--listen", "not-an-address"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("--listen"), "{error}");
    let out = flotilla(&["serve", "--flush-interval", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration"));
}

#[test]
fn every_client_subcommand_has_help() {
    for args in [
        &["login", "--help"][..],
        &["logout", "--help"],
        &["setup", "--help"],
        &["query", "--help"],
        &["get", "--help"],
        &["get", "hosts", "--help"],
        &["get", "host", "--help"],
        &["apply", "--help"],
        &["delete", "--help"],
        &["completion", "--help"],
    ] {
        let out = flotilla(args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: flotilla"), "{args:?}: {help}");
    }
    let help = String::from_utf8_lossy(&flotilla(&["query", "--help"]).stdout).into_owned();
    for option in [
        "--query",
        "--query-name",
        "--hosts",
        "--labels",
        "--teams",
        "--timeout",
        "--format",
        "--exit",
        "--context",
        "--config",
    ] {
        assert!(help.contains(option), "{option} missing from query --help");
    }
    let top = String::from_utf8_lossy(&flotilla(&["--help"]).stdout).into_owned();
    for command in [
        "login", "logout", "setup", "query", "get", "apply", "delete",
    ] {
        assert!(top.contains(command), "{command} missing from --help");
    }
}

#[test]
fn completion_scripts_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = flotilla(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("flotilla"), "{shell}");
        for word in ["login", "query", "--labels"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = flotilla(&["completion", "tcsh"]);
    assert!(!out.status.success());
}

#[test]
fn a_query_needs_sql_and_targets() {
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("config.yml");
    let path = path.to_str().unwrap();
    let out = flotilla(&["query", "--labels", "All Hosts", "--config", path]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--query"));
    let out = flotilla(&["query", "--query", "SELECT 1", "--config", path]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.starts_with("Error: no hosts targeted"), "{error}");
}
