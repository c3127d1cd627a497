//! Several `flotilla serve` nodes sharing one store and a private Redis, as behind a
//! round-robin load balancer: every simulated host's check-ins rotate over the nodes (its read
//! on one node, its write on the next), live queries are started on one node and watched on
//! another, and Redis and nodes are stopped and restarted mid-query.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{RedisServer, ResultsSocket, ScratchDatabase, Server, skip_mysql};
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

/// The nodes of one deployment: a scratch MySQL database, a private Redis, and one data
/// directory for the TLS certificate they share (as nodes behind one name do).
struct Cluster {
    dir: tempfile::TempDir,
    database: ScratchDatabase,
    redis: RedisServer,
    nodes: Vec<Option<Server>>,
    addresses: Vec<String>,
}

impl Cluster {
    async fn start(count: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let database = ScratchDatabase::create().await;
        let redis = RedisServer::start();
        let mut cluster = Cluster {
            dir,
            database,
            redis,
            nodes: Vec::new(),
            addresses: Vec::new(),
        };
        for i in 0..count {
            let node = cluster.launch(i, None);
            cluster.addresses.push(node.addr.to_string());
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn launch(&self, i: usize, address: Option<&str>) -> Server {
        let name = format!("node-{i}");
        let url = self.redis.url();
        let mut args = vec![
            "--redis-url",
            &url,
            "--node-name",
            &name,
            "--mysql-url",
            &self.database.url,
        ];
        if let Some(address) = address {
            args.extend(["--listen", address]);
        }
        Server::start_with_admin(self.dir.path(), &args)
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node running")
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("node running").kill();
    }

    fn restart(&mut self, i: usize) {
        let address = self.addresses[i].clone();
        self.nodes[i] = Some(self.launch(i, Some(&address)));
    }
}

/// One simulated host, with a connection to every node; its requests take turns.
struct RotatingHost {
    agents: Vec<SimAgent>,
    turn: usize,
}

impl RotatingHost {
    async fn enroll(cluster: &Cluster, identifier: &str, i: usize) -> RotatingHost {
        let template = [OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows][i % 3];
        let count = cluster.nodes.len();
        let agents: Vec<SimAgent> = (0..count)
            .map(|n| cluster.node(n).agent(identifier, template))
            .collect();
        // Enroll on node i % count; the others learn the key from the store.
        let key = agents[i % count].enroll().await.expect("enroll");
        for agent in &agents {
            agent.set_node_key(Some(key.clone()));
        }
        RotatingHost { agents, turn: i }
    }

    fn key(&self) -> Option<String> {
        self.agents[0].node_key()
    }

    /// A distributed read on one node and, if it ran something, the write on the next.
    async fn cycle(&mut self, answerer: &TemplateAnswerer) -> Vec<String> {
        let n = self.agents.len();
        let reader = self.turn % n;
        self.turn += 1;
        let report = self.agents[reader].run_distributed_cycle(answerer).await;
        // Whatever the node did, every connection keeps the same key: a node that did not know
        // it would have answered node_invalid and the agent re-enrolled under a new one.
        let key = self.agents[reader].node_key();
        for agent in &self.agents {
            agent.set_node_key(key.clone());
        }
        report
            .written
            .into_iter()
            .filter(|n| n.starts_with("fleet_distributed_query_"))
            .collect()
    }
}

/// Hosts checking in every `pause`, each rotating over the nodes.
struct Fleet {
    stop: watch::Sender<bool>,
    answered: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    tasks: Vec<tokio::task::JoinHandle<RotatingHost>>,
}

impl Fleet {
    fn run(hosts: Vec<(String, RotatingHost)>, pause: Duration) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let answered: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
        let tasks = hosts
            .into_iter()
            .map(|(identifier, mut host)| {
                let (answered, mut stopped) = (answered.clone(), stopped.clone());
                tokio::spawn(async move {
                    let profile = LiveQueryProfile {
                        rows_per_result: 1,
                        error_prob: 0.0,
                        no_result_prob: 0.0,
                    };
                    let answerer = TemplateAnswerer::new(host.agents[0].profile().clone(), profile);
                    while !*stopped.borrow() {
                        let live = host.cycle(&answerer).await;
                        answered
                            .lock()
                            .await
                            .entry(identifier.clone())
                            .or_default()
                            .extend(live);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                    host
                })
            })
            .collect();
        Fleet {
            stop,
            answered,
            tasks,
        }
    }

    async fn stop(self) -> (Vec<RotatingHost>, BTreeMap<String, Vec<String>>) {
        let _ = self.stop.send(true);
        let mut hosts = Vec::new();
        for task in self.tasks {
            hosts.push(task.await.unwrap());
        }
        let answered = Arc::try_unwrap(self.answered).unwrap().into_inner();
        (hosts, answered)
    }
}

async fn enroll_hosts(cluster: &Cluster, count: usize) -> Vec<(String, RotatingHost)> {
    let mut hosts = Vec::new();
    for i in 0..count {
        let identifier = format!("multi-{i}");
        let mut host = RotatingHost::enroll(cluster, &identifier, i).await;
        // A first round on every node: details, and every node has seen the key.
        let answerer = TemplateAnswerer::new(
            host.agents[0].profile().clone(),
            LiveQueryProfile::default(),
        );
        for _ in 0..cluster.nodes.len() {
            host.cycle(&answerer).await;
        }
        hosts.push((identifier, host));
    }
    hosts
}

async fn all_hosts_label(server: &Server) -> u64 {
    let (status, body) = server.admin().await.get("/labels").await;
    assert_eq!(status, 200, "{body}");
    body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "All Hosts")
        .unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// Starts a live query to every host on `server`; returns its id and the admin token.
async fn start_campaign(server: &Server, sql: &str) -> (u64, String) {
    let admin = server.admin().await;
    let label = all_hosts_label(server).await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": sql, "selected": {"labels": [label]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["campaign"]["id"].as_u64().unwrap(),
        admin.token.clone().unwrap(),
    )
}

async fn watch(server: &Server, token: &str, campaign: u64) -> ResultsSocket {
    let mut socket = server.results_socket().await;
    socket.send("auth", json!({"token": token})).await;
    socket
        .send("select_campaign", json!({"campaign_id": campaign}))
        .await;
    socket
}

/// Reads the socket until the campaign's final status; returns every message.
async fn until_finished(socket: &mut ResultsSocket) -> Vec<Value> {
    let mut messages = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("the campaign finished within a minute")
            .expect("the socket stayed open until the final status");
        let last = message["type"] == "status" && message["data"]["status"] == "finished";
        messages.push(message);
        if last {
            return messages;
        }
    }
}

/// The hosts whose results the messages carry, asserting each appears once.
fn result_hosts(messages: &[Value]) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    for message in messages.iter().filter(|m| m["type"] == "result") {
        let hostname = message["data"]["host"]["hostname"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(hosts.insert(hostname.clone()), "{hostname} answered twice");
    }
    hosts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_query_started_on_one_node_and_watched_on_another_gets_every_answer_once() {
    if skip_mysql() {
        return;
    }
    const HOSTS: usize = 24;
    let cluster = Cluster::start(3).await;
    let hosts = enroll_hosts(&cluster, HOSTS).await;
    let keys: Vec<Option<String>> = hosts.iter().map(|(_, h)| h.key()).collect();

    // Started on node 1, watched on node 2 and on node 0; hosts answer through all three.
    let (campaign, token) = start_campaign(cluster.node(1), "SELECT * FROM osquery_info").await;
    let mut far = watch(cluster.node(2), &token, campaign).await;
    let mut other = watch(cluster.node(0), &token, campaign).await;
    let fleet = Fleet::run(hosts, Duration::from_millis(200));
    let far_messages = until_finished(&mut far).await;
    let other_messages = until_finished(&mut other).await;
    let (hosts, answered) = fleet.stop().await;

    assert_eq!(
        far_messages[0]["data"],
        json!({"count": HOSTS, "online": HOSTS, "offline": 0, "missing_in_action": 0})
    );
    let last = far_messages.last().unwrap();
    assert_eq!(
        last["data"],
        json!({"expected_results": HOSTS, "actual_results": HOSTS, "status": "finished"})
    );
    let far_hosts = result_hosts(&far_messages);
    assert_eq!(far_hosts.len(), HOSTS, "every host's result, once");
    assert_eq!(
        result_hosts(&other_messages),
        far_hosts,
        "the same on every node"
    );

    // No node handed the query to a host again once its answer had been seen anywhere, and
    // no host had to enroll again because a node did not know its key.
    let name = format!("fleet_distributed_query_{campaign}");
    for (host, names) in &answered {
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{host}: {names:?}"
        );
    }
    let keys_after: Vec<Option<String>> = hosts.iter().map(|h| h.key()).collect();
    assert_eq!(keys, keys_after, "no host re-enrolled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_query_loses_nothing_and_new_queries_fail_clearly() {
    if skip_mysql() {
        return;
    }
    const HOSTS: usize = 12;
    let mut cluster = Cluster::start(2).await;
    let hosts = enroll_hosts(&cluster, HOSTS).await;
    let (campaign, token) = start_campaign(cluster.node(0), "SELECT * FROM uptime").await;
    let mut socket = watch(cluster.node(1), &token, campaign).await;
    // The watcher is on; half of the hosts answer while Redis is up.
    let (first, rest): (Vec<_>, Vec<_>) =
        hosts.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let first: Vec<_> = first.into_iter().map(|(_, h)| h).collect();
    let rest: Vec<_> = rest.into_iter().map(|(_, h)| h).collect();
    let fleet = Fleet::run(first, Duration::from_millis(100));
    let mut seen = Vec::new();
    while result_hosts(&seen).len() < HOSTS / 2 {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("half the answers within 30 s")
            .expect("socket open");
        seen.push(message);
    }
    let (mut first, _) = fleet.stop().await;

    cluster.redis.stop();
    // Check-ins are still answered from memory on both nodes, and the other half answers
    // while Redis is down (their answers wait on the nodes that took them).
    let rest_fleet = Fleet::run(rest, Duration::from_millis(100));
    let answerer = TemplateAnswerer::new(
        first[0].agents[0].profile().clone(),
        LiveQueryProfile::default(),
    );
    for _ in 0..2 {
        let report = first[0].agents[0].run_distributed_cycle(&answerer).await;
        assert!(
            report.read_ok,
            "check-in answered without Redis: {report:?}"
        );
    }
    // A new live query fails at once, with the reason.
    let admin = cluster.node(1).admin().await;
    let label = all_hosts_label(cluster.node(1)).await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"labels": [label]}}),
        )
        .await;
    assert!(status >= 500, "{status} {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("relay")
            || body.to_string().contains("Redis")
            || body.to_string().contains("relay"),
        "{body}"
    );
    // A health probe with a one-second timeout (a load balancer's, Kubernetes') sees Redis
    // fail as a 500, not as a server that does not answer.
    let probe = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cluster.node(0).ca_pem()).unwrap()])
        .resolve("localhost", cluster.node(0).addr)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let health = format!("{}/healthz?check=redis", cluster.node(0).url());
    let mut answered = None;
    for _ in 0..20 {
        match probe.get(&health).send().await {
            Ok(response) => {
                answered = Some(response.status().as_u16());
                break;
            }
            Err(error) => assert!(error.is_timeout(), "{error}"),
        }
    }
    assert_eq!(answered, Some(500), "the probe timed out every time");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Redis comes back empty; everything recovers by itself.
    cluster.redis.restart();
    seen.extend(until_finished(&mut socket).await);
    let (rest, answered) = rest_fleet.stop().await;
    assert_eq!(
        result_hosts(&seen).len(),
        HOSTS,
        "every answer arrived, once"
    );
    // While Redis was down a node could not learn that a host had answered on another node,
    // so a host may have run the query again there; the watcher still saw each host once.
    let name = format!("fleet_distributed_query_{campaign}");
    assert!(
        answered
            .values()
            .all(|names| names.iter().any(|n| **n == name))
    );

    // And live queries work again.
    let (again, token) = start_campaign(cluster.node(1), "SELECT 2").await;
    let mut socket = watch(cluster.node(0), &token, again).await;
    let everyone = first
        .drain(..)
        .chain(rest)
        .map(|h| (String::new(), h))
        .collect();
    let fleet = Fleet::run(everyone, Duration::from_millis(100));
    let messages = until_finished(&mut socket).await;
    fleet.stop().await;
    assert_eq!(messages.last().unwrap()["data"]["expected_results"], HOSTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_query_is_taken_over_and_rejoins_when_restarted() {
    if skip_mysql() {
        return;
    }
    const HOSTS: usize = 12;
    let mut cluster = Cluster::start(3).await;
    let hosts = enroll_hosts(&cluster, HOSTS).await;
    // Started on node 0, which then dies; watched on node 2.
    let (campaign, token) = start_campaign(cluster.node(0), "SELECT * FROM processes").await;
    let mut socket = watch(cluster.node(2), &token, campaign).await;
    cluster.kill(0);
    cluster.restart(0);
    let fleet = Fleet::run(hosts, Duration::from_millis(150));
    let messages = until_finished(&mut socket).await;
    let (hosts, answered) = fleet.stop().await;
    assert_eq!(result_hosts(&messages).len(), HOSTS, "every answer, once");
    let name = format!("fleet_distributed_query_{campaign}");
    for (host, names) in &answered {
        assert!(
            names.iter().filter(|n| **n == name).count() <= 1,
            "{host}: {names:?}"
        );
    }

    // Every node restarted: no host or saved object lost, keys still valid.
    let admin = cluster.node(1).admin().await;
    let (status, saved) = admin
        .post(
            "/queries",
            &json!({"name": "kept", "query": "SELECT 1", "description": ""}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    let admin = cluster.node(2).admin().await;
    let (_, listed) = admin.get("/hosts").await;
    assert_eq!(listed["hosts"].as_array().unwrap().len(), HOSTS);
    let (_, queries) = admin.get("/queries").await;
    assert!(
        queries["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "kept")
    );
    let mut host = hosts.into_iter().next().unwrap();
    let key = host.key();
    let answerer = TemplateAnswerer::new(
        host.agents[0].profile().clone(),
        LiveQueryProfile::default(),
    );
    for _ in 0..3 {
        host.cycle(&answerer).await;
    }
    assert_eq!(host.key(), key, "the host's key survived every restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carve_whose_blocks_alternate_between_nodes_is_whole_on_every_node() {
    if skip_mysql() {
        return;
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let cluster = Cluster::start(2).await;
    let host = RotatingHost::enroll(&cluster, "host-carving", 0).await;
    let key = host.key().unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 241) as u8).collect();
    const BLOCK: usize = 8192;
    let blocks = data.len().div_ceil(BLOCK);

    let post = |node: usize, path: &str, body: Value| {
        let server = cluster.node(node);
        let request = server
            .client()
            .post(format!("{}/api/v1/osquery/{path}", server.url()))
            .header("authorization", format!("NodeKey {key}"))
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, begin) = post(
        0,
        "carve/begin",
        json!({"node_key": key, "block_count": blocks, "block_size": BLOCK,
            "carve_size": data.len(), "carve_id": "guid-1", "request_id": "request-1"}),
    )
    .await;
    assert_eq!(status, 200, "{begin}");
    let session = begin["session_id"].as_str().unwrap().to_owned();
    // Each block goes to the other node than the one before, as round robin sends them.
    for (i, chunk) in data.chunks(BLOCK).enumerate() {
        let body = json!({"block_id": i, "session_id": session, "request_id": "request-1",
            "data": b64.encode(chunk)});
        let (status, answer) = post((i + 1) % 2, "carve/block", body).await;
        assert_eq!(
            (status, answer),
            (200, json!({"success": true})),
            "block {i}"
        );
    }
    // The last block resent to the node that did not take it: still a success.
    let last = blocks - 1;
    let body = json!({"block_id": last, "session_id": session, "request_id": "request-1",
        "data": b64.encode(&data[last * BLOCK..])});
    assert_eq!(post(last % 2, "carve/block", body).await.0, 200);

    for node in 0..2 {
        let admin = cluster.node(node).admin().await;
        let (_, list) = admin.get("/carves").await;
        let carve = &list["carves"][0];
        assert_eq!(carve["session_id"], session.as_str(), "node {node}: {list}");
        assert_eq!(carve["blocks_received"], blocks, "node {node}: {carve}");
        assert!(carve["completed_at"].is_string(), "node {node}: {carve}");
        assert_eq!(carve["error"], Value::Null);
        let id = carve["id"].as_u64().unwrap();
        let mut whole = Vec::new();
        for block in 0..blocks {
            let (status, body) = admin.get(&format!("/carves/{id}/block/{block}")).await;
            assert_eq!(status, 200, "node {node} block {block}: {body}");
            whole.extend(b64.decode(body["data"].as_str().unwrap()).unwrap());
        }
        assert!(whole == data, "node {node} serves the whole carve");
    }
    // The node that took the last block assembled the file (this test's nodes share a data
    // directory, as they share a certificate).
    let file = cluster
        .dir
        .path()
        .join("carves")
        .join(format!("{session}.tar"));
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::read(&file).unwrap() == data);
}

/// The host's id as the admin API has it.
async fn host_id(server: &Server, identifier: &str) -> u64 {
    let (status, body) = server
        .admin()
        .await
        .get(&format!("/hosts/identifier/{identifier}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["host"]["id"].as_u64().unwrap()
}

/// The names of the scheduled (detail, label, policy) queries in one check-in's answer.
fn scheduled(report: &flotilla_loadtest::CycleReport) -> Vec<String> {
    report
        .received
        .iter()
        .filter(|n| {
            n.starts_with("fleet_detail_query_")
                || n.starts_with("fleet_label_query_")
                || n.starts_with("fleet_policy_query_")
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_answering_its_scheduled_queries_on_one_node_is_not_asked_again_by_another() {
    if skip_mysql() {
        return;
    }
    let cluster = Cluster::start(2).await;
    let admin = cluster.node(0).admin().await;
    let (status, body) = admin
        .post(
            "/labels",
            &json!({"name": "has uptime", "query": "SELECT 1 FROM uptime"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .post(
            "/global/policies",
            &json!({"name": "uptime known", "query": "SELECT 1 FROM uptime"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Both nodes have the label and the policy before the host first checks in.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut host = RotatingHost::enroll(&cluster, "host-round-robin", 0).await;
    let answerer = TemplateAnswerer::new(
        host.agents[0].profile().clone(),
        LiveQueryProfile::default(),
    );
    // A new host's first check-ins: it reports its platform, then gets everything that
    // depends on it. All of it is answered on node 0.
    let mut asked = Vec::new();
    for _ in 0..3 {
        let report = host.agents[0].run_distributed_cycle(&answerer).await;
        assert!(report.read_ok, "{report:?}");
        asked.extend(scheduled(&report));
    }
    for prefix in [
        "fleet_detail_query_",
        "fleet_label_query_",
        "fleet_policy_query_",
    ] {
        assert!(
            asked.iter().any(|n| n.starts_with(prefix)),
            "node 0 asked for {prefix}*: {asked:?}"
        );
    }
    let quiet = host.agents[0].run_distributed_cycle(&answerer).await;
    assert_eq!(
        scheduled(&quiet),
        Vec::<String>::new(),
        "all answered on node 0"
    );

    // Node 1 hears of the answers within one presence round (5 s) and asks none of them again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let report = host.agents[1].run_distributed_cycle(&answerer).await;
    assert!(report.read_ok, "{report:?}");
    assert_eq!(
        scheduled(&report),
        Vec::<String>::new(),
        "node 1 asked again for what the host answered on node 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_team_moves_made_while_redis_was_down_reach_every_node_when_it_returns() {
    if skip_mysql() {
        return;
    }
    let mut cluster = Cluster::start(2).await;
    let admin = cluster.node(0).admin().await;
    let (status, team) = admin.post("/teams", &json!({"name": "servers"})).await;
    assert_eq!(status, 200, "{team}");
    let team = team["team"]["id"].as_u64().unwrap();
    let (status, policy) = admin
        .post(
            &format!("/teams/{team}/policies"),
            &json!({"name": "servers only", "query": "SELECT 1 FROM uptime"}),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    let policy = policy["policy"]["id"].as_u64().unwrap();
    let mut doomed = RotatingHost::enroll(&cluster, "host-doomed", 0).await;
    let mut mover = RotatingHost::enroll(&cluster, "host-mover", 1).await;
    let answerer = TemplateAnswerer::new(
        mover.agents[1].profile().clone(),
        LiveQueryProfile::default(),
    );
    // Both hosts check in on node 1, which knows them; the mover settles with no team.
    for _ in 0..4 {
        assert!(
            doomed.agents[1]
                .run_distributed_cycle(&answerer)
                .await
                .read_ok
        );
        assert!(
            mover.agents[1]
                .run_distributed_cycle(&answerer)
                .await
                .read_ok
        );
    }
    let doomed_id = host_id(cluster.node(0), "host-doomed").await;
    let mover_id = host_id(cluster.node(0), "host-mover").await;

    // Redis goes away; on node 0 an admin deletes one host and moves the other. Node 1 is not
    // told: the announcements cannot get through.
    cluster.redis.stop();
    let (status, body) = admin.delete(&format!("/hosts/{doomed_id}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .post(
            "/hosts/transfer",
            &json!({"team_id": team, "hosts": [mover_id]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.redis.restart();

    // When node 1 reconnects it compares its hosts with the store.
    let key = doomed.key().unwrap();
    let url = format!("{}/api/v1/osquery/distributed/read", cluster.node(1).url());
    let client = cluster.node(1).client();
    let mut refused = false;
    for _ in 0..100 {
        let response = client
            .post(&url)
            .json(&json!({"node_key": key}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        if body["node_invalid"] == true {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refused,
        "node 1 still serves a host deleted while Redis was down"
    );
    let name = format!("fleet_policy_query_{policy}");
    let mut handed = false;
    for _ in 0..10 {
        let report = mover.agents[1].run_distributed_cycle(&answerer).await;
        if report.received.contains(&name) {
            handed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(handed, "node 1 hands the mover its new team's policy");
}
