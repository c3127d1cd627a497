//! The `flotilla-loadtest` command line as a user meets it.

use std::process::Command;

#[test]
fn help_names_the_options_a_run_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-loadtest"))
        .arg("--help")
        .output()
        .expect("running flotilla-loadtest");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--server",
        "--ca",
        "--enroll-secret",
        "--hosts",
        "--duration",
        "--start-period",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[test]
fn a_missing_server_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-loadtest"))
        .args(["--enroll-secret", "s"])
        .output()
        .expect("running flotilla-loadtest");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
}
