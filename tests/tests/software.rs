//! Software inventory and vulnerabilities, end to end: simulated osqueryd hosts (Ubuntu 22.04
//! and Rocky 9, with the load tester's package lists) report their software through Fleet's
//! detail queries; the server matches it against an offline OSV feed (the load tester's
//! `write-osv-fixture`, plus a broken file) and the API answers with exact host counts —
//! predicted here from the simulation's own description of which host carries which
//! vulnerable version. Then the vulnerability dashboard's call sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use flotilla_loadtest::software::fixture::{FixtureOptions, WITHDRAWN_ID, write_fixture};
use flotilla_loadtest::software::{DEFAULT_POOL_SIZE, vulnerable_packages};
use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{AdminClient, Server};
use serde_json::{Value, json};

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn feed(dir: &Path) -> std::path::PathBuf {
    let feed = dir.join("feed");
    write_fixture(
        &feed,
        FixtureOptions {
            pool_size: DEFAULT_POOL_SIZE,
            records: 0,
        },
    )
    .unwrap();
    std::fs::write(
        feed.join("broken.json"),
        "{\"id\": \"USN-1\", \"affected\": [",
    )
    .unwrap();
    feed
}

fn start(dir: &Path, feed: &Path) -> Server {
    Server::start_with_admin(
        dir,
        &[
            "--vulnerability-feed",
            feed.to_str().unwrap(),
            "--software-job-interval",
            "200ms",
            "--software-counts-interval",
            "200ms",
        ],
    )
}

/// What the simulation says each host carries at a vulnerable version: CVE → hostnames, and
/// (name, version) → hostnames.
type Expected = (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<(String, String), BTreeSet<String>>,
);

fn expected(agents: &[SimAgent]) -> Expected {
    let mut by_cve: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_package: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for agent in agents {
        let profile = agent.profile();
        for k in vulnerable_packages(profile) {
            by_cve
                .entry(k.cve.to_owned())
                .or_default()
                .insert(profile.hostname.clone());
            // rpm packages are listed with version and release apart.
            let version = k
                .vulnerable
                .split_once('-')
                .filter(|_| k.source.table() == "rpm_packages");
            let version = version.map_or(k.vulnerable, |(v, _)| v);
            by_package
                .entry((k.name.to_owned(), version.to_owned()))
                .or_default()
                .insert(profile.hostname.clone());
        }
    }
    (by_cve, by_package)
}

async fn enroll_and_report(server: &Server, count: usize) -> Vec<SimAgent> {
    let mut agents = Vec::new();
    for i in 0..count {
        let template = if i % 2 == 0 {
            OsTemplate::Ubuntu
        } else {
            OsTemplate::Rocky
        };
        let mut agent = server.agent(&format!("sw-host-{i:02}"), template);
        agent.enroll().await.unwrap();
        let answers = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
        let report = agent.run_distributed_cycle(&answers).await;
        assert!(
            report
                .answered
                .iter()
                .any(|q| q == "fleet_detail_query_software_linux"),
            "the software query goes out with the first details: {:?}",
            report.answered
        );
        agents.push(agent);
    }
    agents
}

fn names(hosts: &Value) -> BTreeSet<String> {
    hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `path` (which has no `page` yet) until the list `key` is left out, as the
/// vulnerability dashboard reads: it stops on a page without the list.
async fn every_page(admin: &AdminClient, path: &str, key: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 0.. {
        let separator = if path.contains('?') { '&' } else { '?' };
        let (status, body) = admin
            .get(&format!("{path}{separator}page={page}&per_page=5"))
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        match body.get(key) {
            Some(Value::Array(items)) if !items.is_empty() => all.extend(items.iter().cloned()),
            _ => break,
        }
        assert!(page < 1000, "{path} never ended");
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_software_is_matched_and_counted_exactly_and_the_dashboard_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let server = start(dir.path(), &feed);
    let admin = server.admin().await;
    let agents = enroll_and_report(&server, 12).await;
    let (by_cve, by_package) = expected(&agents);
    assert!(
        by_cve.len() >= 3,
        "the sample carries several CVEs: {by_cve:?}"
    );

    // The match and the counts run in the background; wait for the predicted CVE set.
    until(
        "every predicted CVE is listed with its exact host count",
        || async {
            let (status, body) = admin
                .get("/vulnerabilities?per_page=100&order_key=cve&order_direction=asc")
                .await;
            assert_eq!(status, 200, "{body}");
            let listed: BTreeMap<String, u64> = body["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["cve"].as_str().unwrap().to_owned(),
                        v["hosts_count"].as_u64().unwrap(),
                    )
                })
                .collect();
            let wanted: BTreeMap<String, u64> = by_cve
                .iter()
                .map(|(cve, hosts)| (cve.clone(), hosts.len() as u64))
                .collect();
            if listed != wanted {
                eprintln!("listed {listed:?}\nwanted {wanted:?}");
            }
            listed == wanted
        },
    )
    .await;

    // Each vulnerable version: its host count, its CVE, the version that fixes it, and
    // exactly the hosts the simulation put it on.
    let (status, body) = admin
        .get("/software/versions?vulnerable=true&per_page=100&order_key=name&order_direction=asc")
        .await;
    assert_eq!(status, 200);
    let vulnerable = body["software"].as_array().unwrap();
    assert_eq!(body["count"].as_u64().unwrap() as usize, vulnerable.len());
    assert!(body["counts_updated_at"].is_string());
    let listed: BTreeSet<(String, String)> = vulnerable
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let predicted: BTreeSet<(String, String)> = by_package.keys().cloned().collect();
    assert_eq!(listed, predicted);
    for software in vulnerable {
        let key = (
            software["name"].as_str().unwrap().to_owned(),
            software["version"].as_str().unwrap().to_owned(),
        );
        let hosts = &by_package[&key];
        assert_eq!(
            software["hosts_count"].as_u64().unwrap() as usize,
            hosts.len(),
            "{key:?}"
        );
        let vulns = software["vulnerabilities"].as_array().unwrap();
        for v in vulns {
            assert!(v["cve"].as_str().unwrap().starts_with("CVE-"), "{v}");
            assert!(v["resolved_in_version"].is_string(), "{v}");
            assert!(
                v["cvss_score"].is_number(),
                "a CVSS score from the record: {v}"
            );
            assert!(v["cve_published"].is_string(), "{v}");
            for field in [
                "epss_probability",
                "cisa_known_exploit",
                "cve_description",
                "details_link",
            ] {
                assert!(v.get(field).is_some(), "{field} in {v}");
            }
        }
        let (status, on) = admin
            .get(&format!(
                "/hosts?software_id={}&per_page=100&order_key=hostname",
                software["id"]
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(&names(&on["hosts"]), hosts, "{key:?}");
        assert_eq!(on["software"]["id"], software["id"]);
    }
    // The withdrawn record and the broken file add nothing; the broken file is named.
    let (_, all) = admin.get("/vulnerabilities?per_page=1000").await;
    assert!(!all.to_string().contains(WITHDRAWN_ID));
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("flotilla_vulnerability_feed_file_errors{file=\"broken.json\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("vulnerability_feed"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // One CVE in detail: the versions it affects, with the fix.
    let (cve, hosts) = by_cve.iter().next().unwrap();
    let (status, detail) = admin
        .get(&format!("/vulnerabilities/{}", cve.to_lowercase()))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["vulnerability"]["hosts_count"].as_u64().unwrap() as usize,
        hosts.len()
    );
    assert!(
        !detail["vulnerability"]["software"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = admin.get("/vulnerabilities/CVE-2099-00001").await;
    assert_eq!(status, 404);
    let (status, bad) = admin.get("/vulnerabilities/not-a-cve").await;
    assert_eq!(status, 400, "{bad}");

    // A host's own software, with its vulnerabilities.
    let (_, listed_hosts) = admin.get("/hosts?per_page=100").await;
    let first = &listed_hosts["hosts"][0];
    let (status, detail) = admin.get(&format!("/hosts/{}", first["id"])).await;
    assert_eq!(status, 200);
    let installed = detail["host"]["software"].as_array().unwrap();
    assert!(installed.len() > 100, "a few hundred packages per host");
    let (status, by_title) = admin
        .get(&format!("/hosts/{}/software?per_page=1000", first["id"]))
        .await;
    assert_eq!(status, 200);
    let versions: usize = by_title["software"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["installed_versions"].as_array().unwrap().len())
        .sum();
    assert_eq!(versions, installed.len());

    // The vulnerability dashboard's calls, in its order.
    let (status, os) = admin.get("/os_versions").await;
    assert_eq!(status, 200);
    let os_names: BTreeSet<String> = os["os_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    let total: u64 = os["os_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["hosts_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 12);
    let hosts = every_page(
        &admin,
        "/hosts?order_key=hostname&order_direction=asc",
        "hosts",
    )
    .await;
    assert_eq!(hosts.len(), 12);
    for host in &hosts {
        assert!(
            os_names.contains(host["os_version"].as_str().unwrap()),
            "{}",
            host["os_version"]
        );
    }
    let software = every_page(
        &admin,
        "/software?vulnerable=true&order_key=name&order_direction=asc",
        "software",
    )
    .await;
    assert_eq!(software.len(), by_package.len());
    for s in &software {
        let on = every_page(
            &admin,
            &format!("/hosts?software_id={}&order_key=hostname", s["id"]),
            "hosts",
        )
        .await;
        assert_eq!(on.len() as u64, s["hosts_count"].as_u64().unwrap());
    }
    let (status, named) = admin.get("/software?query=python3").await;
    assert_eq!(status, 200);
    assert!(
        named["software"].as_array().is_some_and(|s| !s.is_empty()),
        "{named}"
    );
    let (status, gone) = admin.get("/software?query=no-such-package-anywhere").await;
    assert_eq!(status, 200);
    assert!(gone.get("software").is_none(), "{gone}");
    let (status, _) = admin.get("/hosts?software_id=999999999").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_inventory_is_not_written_again_and_the_feature_switch_stops_collection() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let server = start(dir.path(), &feed);
    let admin = server.admin().await;
    let mut agents = enroll_and_report(&server, 2).await;
    let changed = || async {
        let text = server.metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix("flotilla_software_sets_changed_total "))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .unwrap()
    };
    assert_eq!(changed().await, 2);
    // A refetch sends the details again; the same packages change nothing.
    let (_, hosts) = admin.get("/hosts").await;
    for host in hosts["hosts"].as_array().unwrap() {
        let (status, _) = admin
            .post(&format!("/hosts/{}/refetch", host["id"]), &json!({}))
            .await;
        assert_eq!(status, 200);
    }
    for agent in &mut agents {
        let answers = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
        let report = agent.run_distributed_cycle(&answers).await;
        assert!(report.answered.iter().any(|q| q.contains("software_linux")));
    }
    assert_eq!(changed().await, 2, "an unchanged set costs no write");

    // Off: the software queries are no longer sent.
    let (status, config) = admin
        .patch(
            "/config",
            &json!({"features": {"enable_software_inventory": false}}),
        )
        .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["features"]["enable_software_inventory"], false);
    let (_, hosts) = admin.get("/hosts").await;
    let id = hosts["hosts"][0]["id"].clone();
    admin
        .post(&format!("/hosts/{id}/refetch"), &json!({}))
        .await;
    let agent = agents
        .iter_mut()
        .find(|a| a.profile().hostname == hosts["hosts"][0]["hostname"].as_str().unwrap())
        .unwrap();
    let read = agent.distributed_read().await.unwrap();
    assert!(
        read.queries
            .keys()
            .any(|q| q.contains("fleet_detail_query_os_version"))
    );
    assert!(
        !read.queries.keys().any(|q| q.contains("software")),
        "{:?}",
        read.queries.keys()
    );
}

/// An API-only user with `roles` (`global_role` or `teams`), and a client with its token.
async fn api_only(server: &Server, admin: &AdminClient, email: &str, roles: Value) -> AdminClient {
    let mut body = json!({"name": "bot", "email": email, "api_only": true});
    for (k, v) in roles.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = admin.post("/users/admin", &body).await;
    assert_eq!(status, 200, "{created}");
    server
        .admin_client()
        .with_token(created["token"].as_str().unwrap())
}

/// Who may read the software and vulnerability lists, and what bad parameters get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_reads_follow_roles_and_refuse_bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let server = start(dir.path(), &feed);
    let admin = server.admin().await;
    let agents = enroll_and_report(&server, 1).await;
    let (status, team) = admin.post("/teams", &json!({"name": "eng"})).await;
    assert_eq!(status, 200, "{team}");
    let team = team["team"]["id"].as_u64().unwrap();
    let observer = api_only(
        &server,
        &admin,
        "observer@example.com",
        json!({"global_role": "observer"}),
    )
    .await;
    let team_observer = api_only(
        &server,
        &admin,
        "team@example.com",
        json!({"teams": [{"id": team, "role": "observer"}]}),
    )
    .await;
    let (_, hosts) = admin.get("/hosts").await;
    let host = hosts["hosts"][0]["id"].as_u64().unwrap();
    assert_eq!(agents.len(), 1);

    for path in [
        "/software",
        "/software/versions",
        "/software/titles",
        "/vulnerabilities",
        "/os_versions",
    ] {
        let (status, _) = server.admin_client().get(path).await;
        assert_eq!(status, 401, "{path} without a session");
        let (status, body) = observer.get(path).await;
        assert_eq!(status, 200, "{path} for a global observer: {body}");
        if path != "/os_versions" {
            let (status, body) = team_observer.get(path).await;
            assert_eq!(
                status, 403,
                "{path} across teams for a team observer: {body}"
            );
        }
        let (status, body) = team_observer.get(&format!("{path}?team_id={team}")).await;
        assert_eq!(status, 200, "{path} of its own team: {body}");
    }
    // The host is in no team: a team observer may not read its software.
    let (status, _) = team_observer.get(&format!("/hosts/{host}/software")).await;
    assert_eq!(status, 403);
    let (status, _) = observer.get(&format!("/hosts/{host}/software")).await;
    assert_eq!(status, 200);
    let (status, _) = observer.get("/hosts/999999/software").await;
    assert_eq!(status, 404);

    for bad in [
        "/software/versions?per_page=20000",
        "/software/versions?order_key=bogus",
        "/software?order_direction=sideways",
        "/vulnerabilities?order_key=name",
        "/software/titles?order_key=cvss_score",
        "/hosts?os_name=Ubuntu",
    ] {
        let (status, body) = observer.get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].is_string(), "Fleet's error shape: {body}");
    }
    let (status, _) = observer.get("/software/versions/999999").await;
    assert_eq!(status, 404);
    let (status, _) = observer.get("/software/titles/999999").await;
    assert_eq!(status, 404);
    let (status, _) = observer.get("/os_versions/1").await;
    assert_eq!(status, 404);
}

/// The software jobs run on one node at a time: the relay's lock goes to one node, its holder
/// renews it, and another node gets it only once the holder stops renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_software_lock_is_held_by_one_node_at_a_time() {
    use flotilla_engine::relay::Relay;
    use flotilla_storage::RedisRelay;
    let redis = flotilla_tests::RedisServer::start();
    let node =
        |name: &str| RedisRelay::connect(&redis.url(), name.into(), 2, Default::default()).unwrap();
    let (a, b) = (node("node-a"), node("node-b"));
    let ttl = Duration::from_secs(3);
    assert!(a.hold_lock("software", ttl).await.unwrap());
    assert!(!b.hold_lock("software", ttl).await.unwrap());
    // The holder renews: still held past the first lease.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(a.hold_lock("software", ttl).await.unwrap());
        assert!(!b.hold_lock("software", ttl).await.unwrap());
    }
    // The holder stops (a crash): the lease runs out and the other node takes over.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(b.hold_lock("software", ttl).await.unwrap());
    assert!(!a.hold_lock("software", ttl).await.unwrap());
    // A lock of another name is independent.
    assert!(a.hold_lock("other", ttl).await.unwrap());
}

/// What the host's user sees from Fleet Desktop: the My Device page lists, through the device
/// token orbit set, the software this host's osqueryd reported, by title and with the CVEs
/// the feed matched — the same list an admin reads for the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_device_lists_the_software_the_host_reported_with_its_vulnerabilities() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let server = start(dir.path(), &feed);
    let admin = server.admin().await;

    // A machine that carries a vulnerable package: orbit enrolls it by hardware UUID and
    // starts osqueryd with --host_identifier=uuid, so both name one host.
    let (uuid, mut osqueryd) = (0..)
        .map(|i| format!("5d0e7c3a-1b2c-4d5e-8f90-{i:012}"))
        .map(|uuid| {
            let agent = server.agent(&uuid, OsTemplate::Ubuntu);
            (uuid, agent)
        })
        .find(|(_, agent)| !vulnerable_packages(agent.profile()).is_empty())
        .unwrap();
    let cves: BTreeSet<String> = vulnerable_packages(osqueryd.profile())
        .into_iter()
        .map(|k| k.cve.to_owned())
        .collect();
    let fleetd = server.fleetd(
        flotilla_loadtest::fleetd::FleetdHost {
            hardware_uuid: uuid.clone(),
            hardware_serial: "SER-MD".into(),
            hostname: osqueryd.profile().hostname.clone(),
            computer_name: osqueryd.profile().hostname.clone(),
            hardware_model: "ThinkPad".into(),
            platform: "ubuntu".into(),
            osquery_identifier: String::new(),
        },
        flotilla_tests::SECRET,
        1,
    );
    fleetd.tick().await;
    let token = fleetd.device_token().expect("orbit set a device token");
    osqueryd.enroll().await.unwrap();
    let mut profile = osqueryd.profile().clone();
    profile.orbit = Some(flotilla_loadtest::fleetd::FLEETD_VERSION.into());
    let answers = TemplateAnswerer::new(profile, LiveQueryProfile::default());
    osqueryd.run_distributed_cycle(&answers).await;

    let device = |path: &str| format!("{}/api/latest/fleet/device/{token}{path}", server.url());
    let http = server.client();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Written by the batched writer, then matched in the background.
    until("My Device lists the host's vulnerable software", || async {
        let (status, body) = get(device("/software?per_page=1000")).await;
        assert_eq!(status, 200, "{body}");
        let shown: BTreeSet<String> = body["software"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| {
                t["installed_versions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|v| v["vulnerabilities"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        shown == cves
    })
    .await;

    let (_, mine) = get(device("/software?per_page=1000")).await;
    let (_, page) = get(device("")).await;
    let host_id = page["host"]["id"].as_u64().expect("the host's id");
    let (status, theirs) = admin
        .get(&format!("/hosts/{host_id}/software?per_page=1000"))
        .await;
    assert_eq!(status, 200);
    let titles = |body: &Value| -> BTreeSet<String> {
        body["software"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(titles(&mine).len() > 10, "the whole inventory: {mine}");
    assert_eq!(
        titles(&mine),
        titles(&theirs),
        "the admin's list is the user's"
    );
    assert_eq!(mine["count"], theirs["count"]);
    // The page itself carries the software too, unless told not to.
    assert!(
        page["host"]["software"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{page}"
    );
    let (_, slim) = get(device("?exclude_software=true")).await;
    assert!(slim["host"].get("software").is_none(), "{slim}");
    let (status, _) = get(format!(
        "{}/api/latest/fleet/device/not-a-token/software",
        server.url()
    ))
    .await;
    assert_eq!(status, 401, "the token is the credential");
}
