#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/.

The seeds are what real clients send (osquery 5.x bodies, fleetctl spec files, the websocket
handshake Fleet's UI sends, feed files from vulns/tests/fixtures, a TUF repository from
`flotilla updates init`). Run from the repository root; the TUF seed needs a built flotilla
binary (FLOTILLA_BIN, default target/debug/flotilla).
"""
import gzip, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")

def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

ENDPOINTS = ["enroll", "config", "distributed_read", "distributed_write", "log", "carve_begin", "carve_block"]

def osquery(name, endpoint, body, gz=False):
    selector = ENDPOINTS.index(endpoint) | (0x80 if gz else 0)
    raw = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (body.encode() if isinstance(body, str) else body)
    payload = gzip.compress(raw) if gz else raw
    write("osquery_body", name, bytes([selector]) + payload)

def osquery_seeds():
    key = "k" * 32
    osquery("enroll", "enroll", {
        "enroll_secret": "secret", "host_identifier": "web-1", "platform_type": "9",
        "host_details": {
            "os_version": {"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0", "build": "", "platform": "ubuntu", "platform_like": "debian", "codename": "jammy", "arch": "x86_64"},
            "osquery_info": {"uuid": "6C9E8A0E-1111-2222-3333-444455556666", "version": "5.12.1", "build_platform": "ubuntu", "extensions": "active", "pid": 1234},
            "system_info": {"hostname": "web-1", "uuid": "4C4C4544-0042", "cpu_type": "x86_64", "cpu_brand": "Intel(R) Xeon(R)", "cpu_physical_cores": "4", "cpu_logical_cores": "8", "physical_memory": "17179869184", "hardware_vendor": "Dell Inc.", "hardware_model": "PowerEdge R640", "hardware_serial": "ABC123", "computer_name": "web-1"},
        }})
    osquery("enroll-gzip", "enroll", {"enroll_secret": "secret", "host_identifier": "", "host_details": {"osquery_info": {"uuid": "u-1", "version": "5.0.1"}}}, gz=True)
    osquery("config", "config", {"node_key": key})
    osquery("read", "distributed_read", {"node_key": key})
    osquery("read-header-key", "distributed_read", {})
    osquery("write-details", "distributed_write", {
        "node_key": key,
        "queries": {
            "fleet_detail_query_os_version": [{"name": "Ubuntu", "version": "22.04.4 LTS", "major": "22", "minor": "4", "patch": "0", "build": "", "platform": "ubuntu", "platform_like": "debian", "codename": "jammy"}],
            "fleet_detail_query_system_info": [{"hostname": "web-1", "computer_name": "web-1", "uuid": "u", "cpu_brand": "Xeon", "physical_memory": "8589934592", "hardware_serial": "S"}],
            "fleet_detail_query_uptime": [{"total_seconds": "86400"}],
            "fleet_detail_query_network_interface_unix": [{"address": "10.0.0.5", "mac": "00:11:22:33:44:55"}],
            "fleet_detail_query_osquery_flags": [{"name": "distributed_interval", "value": "10"}, {"name": "config_tls_refresh", "value": "60"}, {"name": "logger_tls_period", "value": "10"}],
            "fleet_detail_query_orbit_info": [{"version": "1.30.0", "desktop_version": "1.30.0", "scripts_enabled": "1"}],
            "fleet_detail_query_software_linux": [
                {"name": "openssl", "version": "3.0.2-0ubuntu1.15", "source": "deb_packages", "release": "", "vendor": "", "arch": "amd64", "installed_path": ""},
                {"name": "requests", "version": "2.31.0", "source": "python_packages", "installed_path": "/usr/lib/python3/dist-packages"},
                {"name": "", "version": "1", "source": "deb_packages"}],
            "fleet_detail_query_software_vscode_extensions": [{"name": "rust-analyzer", "version": "0.3.1", "source": "vscode_extensions", "vendor": "rust-lang", "extension_id": "rust-lang.rust-analyzer"}],
            "fleet_detail_query_failed": "",
        },
        "statuses": {"fleet_detail_query_os_version": 0, "fleet_detail_query_failed": 1},
        "messages": {"fleet_detail_query_failed": "no such table"},
        "stats": {}})
    osquery("write-live-label-policy", "distributed_write", {
        "node_key": key,
        "queries": {"fleet_distributed_query_1": [{"1": "1"}, {"1": "2"}], "fleet_distributed_query_2": "",
                    "fleet_label_query_7": [{"1": "1"}], "fleet_policy_query_3": [], "unknown_query": [{}]},
        "statuses": {"fleet_distributed_query_1": 0, "fleet_distributed_query_2": "1", "fleet_label_query_7": 0, "fleet_policy_query_3": 0},
        "messages": {"fleet_distributed_query_2": "error: near \"SELEC\": syntax error"},
        "stats": {"fleet_distributed_query_1": {"wall_time": 1, "wall_time_ms": 1002, "user_time": 3, "system_time": 1, "memory": 81920}}})
    osquery("write-gzip", "distributed_write", {"node_key": key, "queries": {"fleet_distributed_query_9": [{"a": "b"}]}, "statuses": {"fleet_distributed_query_9": 0}}, gz=True)
    result_lines = [
        {"name": "pack/Global/uptime", "hostIdentifier": "web-1", "calendarTime": "Mon Jan  1 00:00:00 2024 UTC", "unixTime": 1704067200, "epoch": 0, "counter": 0, "numerics": False, "decorations": {"host_uuid": "u"}, "columns": {"total_seconds": "10"}, "action": "added"},
        {"name": "pack/team-3/users", "hostIdentifier": "web-1", "unixTime": "1704067200", "snapshot": [{"uid": "0", "username": "root"}], "action": "snapshot"},
        {"name": "pack_Global_events", "unixTime": 1704067201, "action": "snapshot", "columns": {"pid": "1"}},
        "not an object", 7, {"deep": [[[[{"x": 1}]]]]},
    ]
    osquery("log-results", "log", {"node_key": key, "log_type": "result", "data": result_lines})
    osquery("log-status", "log", {"node_key": key, "log_type": "status", "data": [
        {"severity": "0", "filename": "scheduler.cpp", "line": "83", "message": "Executing scheduled query", "version": "5.12.1", "decorations": {}},
        {"severity": 1, "message": "multi\nline"}]})
    osquery("log-gzip", "log", {"node_key": key, "log_type": "result", "data": result_lines[:2]}, gz=True)
    osquery("log-bad-utf8", "log", b'{"node_key":"k","log_type":"status","data":[{"message":"caf\xe9"}]}')
    osquery("carve-begin", "carve_begin", {"node_key": key, "block_count": "2", "block_size": "300", "carve_size": "400", "carve_id": "c-1", "request_id": "fleet_distributed_query_4"})
    osquery("carve-begin-numbers", "carve_begin", {"node_key": key, "block_count": 1, "block_size": 5, "carve_size": 5, "request_id": "r"})
    osquery("carve-block", "carve_block", {"block_id": "0", "session_id": "8f0c6f1e-5c8e-4e0a-9f43-1a2b3c4d5e6f", "request_id": "fleet_distributed_query_4", "data": "aGVsbG8="})
    osquery("carve-block-last", "carve_block", {"block_id": 1, "session_id": "s", "request_id": "r", "data": "aGk="})

def websocket_seeds():
    auth = lambda t: json.dumps({"type": "auth", "data": {"token": t}})
    select = lambda i: json.dumps({"type": "select_campaign", "data": {"campaign_id": i}})
    write("websocket_session", "admin-selects", auth("admin") + "\n" + select(1))
    write("websocket_session", "owner-selects-then-talks", auth("owner") + "\n" + select(1) + "\n" + json.dumps({"type": "ping"}))
    write("websocket_session", "other-is-refused", auth("other") + "\n" + select(1))
    write("websocket_session", "bad-token", auth("nope") + "\n" + select(1))
    write("websocket_session", "unknown-campaign", auth("admin") + "\n" + select(99))
    write("websocket_session", "string-id", auth("admin") + "\n" + json.dumps({"type": "select_campaign", "data": {"campaign_id": "1"}}))
    write("websocket_session", "binary-and-ping", b"\x02ping\n" + auth("admin").encode() + b"\n\x01\x00\x01")
    write("websocket_session", "close-early", auth("admin").encode() + b"\n\x03")

def spec_seeds():
    write("spec_yaml", "all-kinds", """apiVersion: v1
kind: query
spec:
  name: users
  description: Local users
  query: SELECT * FROM users;
  interval: 3600
  platform: linux,darwin
  logging: snapshot
  automations_enabled: true
  observer_can_run: true
---
apiVersion: v1
kind: label
spec:
  name: Ubuntu hosts
  query: SELECT 1 FROM os_version WHERE platform = 'ubuntu';
  platform: linux
  label_membership_type: dynamic
---
apiVersion: v1
kind: label
spec:
  name: Canaries
  label_membership_type: manual
  hosts: [web-1, web-2]
---
apiVersion: v1
kind: policy
spec:
  name: Firewall on
  query: SELECT 1 FROM alf WHERE global_state >= 1;
  platform: darwin
  critical: true
  team: ""
---
apiVersion: v1
kind: team
spec:
  team:
    name: Servers
    secrets:
      - secret: team-secret
    agent_options:
      config:
        options:
          distributed_interval: 10
---
apiVersion: v1
kind: config
spec:
  agent_options:
    config:
      options:
        distributed_interval: 10
        logger_tls_period: 10
      decorators:
        load: ["SELECT uuid AS host_uuid FROM system_info;"]
    overrides:
      platforms:
        darwin:
          options:
            distributed_interval: 30
    command_line_flags:
      verbose: false
  features:
    enable_software_inventory: true
---
apiVersion: v1
kind: enroll_secret
spec:
  secrets:
    - secret: abc
""")
    write("spec_yaml", "report-and-fleet", """apiVersion: v1
kind: report
spec: {name: r, query: SELECT 1, team: Servers}
---
apiVersion: v1
kind: fleet
spec:
  fleet: {name: Laptops}
---
""")
    write("spec_yaml", "anchors", "a: &x {kind: query}\nb: *x\n---\nkind: query\nspec: {name: &n q, query: *n}\n")

def feed_seeds():
    fixtures = os.path.join(ROOT, "vulns", "tests", "fixtures", "feed")
    for dirpath, _, names in os.walk(fixtures):
        for n in sorted(names):
            path = os.path.join(dirpath, n)
            data = open(path, "rb").read()
            if n == "known_exploited_vulnerabilities.json":
                write("osv_feed", "kev", b"\x01" + data)
            elif n.startswith("epss_scores"):
                write("osv_feed", "epss", b"\x02" + data)
                write("osv_feed", "epss-gz", b"\x82" + gzip.compress(data))
            elif n.endswith(".json"):
                write("osv_feed", n[:-5], b"\x00" + data)
    first = sorted(os.listdir(os.path.join(fixtures, "debian")))[0]
    write("osv_feed", "debian-gz", b"\x80" + gzip.compress(open(os.path.join(fixtures, "debian", first), "rb").read()))

def version_seeds():
    cases = {
        "debian": "Debian:12\n1:2.3.4-1+deb12u1\n2.3.4-1\n1.0~rc1-1",
        "ubuntu": "Ubuntu:22.04:LTS\n3.0.2-0ubuntu1.15\n3.0.2-0ubuntu1.9\n3.0.2",
        "rocky": "Rocky Linux:9\n1:3.0.7-25.el9_3\n3.0.7-24.el9\n3.0.7-25.el9_3^git1",
        "alma": "AlmaLinux:9\n0:1.2-3.el9\n1.2-3.el9~beta\n1.2.0-3",
        "pypi": "PyPI\n2.31.0\n2.31.0rc1\n1!0.1.post2.dev3",
        "npm": "npm\n1.2.3-beta.1\n1.2.3\n1.2",
        "crates": "crates.io\n0.4.0\n0.4.0-alpha\n1",
        "go": "Go\nv1.2.3\n1.2.3+incompatible\n0.0.0-20230101000000-abcdef123456",
        "homebrew": "Homebrew\n1.2.3_1\n1.2.3\n1.10",
        "rpm-only": "nothing\n1.0a\n1.0.a\n1.0^",
    }
    for name, text in cases.items():
        write("version_order", name, text)

def tuf_seeds():
    binary = os.environ.get("FLOTILLA_BIN", os.path.join(ROOT, "target", "debug", "flotilla"))
    if not os.path.exists(binary):
        print(f"skipping the TUF seed: no {binary}", file=sys.stderr)
        return
    sep = b"\n--flotilla-fuzz--\n"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        for role in ["ROOT", "TARGETS", "SNAPSHOT", "TIMESTAMP"]:
            env[f"FLOTILLA_{role}_PASSPHRASE"] = "fuzz"
        subprocess.run([binary, "updates", "init", "--path", tmp], check=True, env=env, stdout=subprocess.DEVNULL)
        target = os.path.join(tmp, "osqueryd")
        with open(target, "wb") as f:
            f.write(b"\x7fELF not really")
        subprocess.run([binary, "updates", "add", "--path", tmp, "--target", target, "--name", "osqueryd", "--platform", "linux", "--version", "5.12.1", "--tag", "stable"], check=True, env=env, stdout=subprocess.DEVNULL)
        repo = os.path.join(tmp, "repository")
        files = [open(os.path.join(repo, f"{r}.json"), "rb").read() for r in ["root", "targets", "snapshot", "timestamp"]]
    write("tuf_metadata", "repository", sep.join(files))
    write("tuf_metadata", "root-only", files[0])

osquery_seeds(); websocket_seeds(); spec_seeds(); feed_seeds(); version_seeds(); tuf_seeds()
