//! The NATS, S3 and Kafka log destinations against real servers of their protocols, which the
//! tests start and stop themselves: a private `nats-server` with JetStream (Debian's
//! `nats-server`), moto's S3 server (`moto_server`, PyPI `moto[server]`) and a tansu Kafka
//! broker (crates.io `tansu` with its SQLite storage: `cargo install tansu --locked --features
//! libsql`). For each: every line arrives exactly as sent; the destination stopped and started
//! again loses nothing; `flotilla` killed with SIGKILL and started again loses nothing osquery
//! was told was accepted.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use flotilla_loadtest::{LogType, OsTemplate, SimAgent};
use flotilla_tests::{Server, ServiceProcess, eventually_within, free_port, result_line};
use futures_util::StreamExt;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// The lines osquery was told were accepted, by `seq`.
struct Sent {
    agent: SimAgent,
    host: &'static str,
    seqs: Vec<u64>,
}

impl Sent {
    /// A simulated osqueryd enrolled as `host`.
    async fn enrolled(server: &Server, host: &'static str) -> Sent {
        let agent = server.agent(host, OsTemplate::Ubuntu);
        agent.enroll().await.unwrap();
        Sent {
            agent,
            host,
            seqs: Vec::new(),
        }
    }

    /// Posts lines `seqs` as one result log request; it must be accepted (200).
    async fn send(&mut self, seqs: Range<u64>) {
        let lines: Vec<Value> = seqs
            .clone()
            .map(|seq| result_line(self.host, "pack/Global/procs", seq))
            .collect();
        self.agent
            .log(LogType::Result, lines, false)
            .await
            .expect("the log request was accepted");
        self.seqs.extend(seqs);
    }
}

/// `seq` of each received line, in the order received; every line must be exactly as sent.
fn seqs_of(host: &str, lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|line| {
            let seq: u64 = line["columns"]["seq"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                line,
                &result_line(host, "pack/Global/procs", seq),
                "as sent"
            );
            seq
        })
        .collect()
}

/// A metric's value in `/metrics`, by its full series name with labels.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// NATS

/// A private `nats-server` on a free port, with JetStream kept in `store` (so a restart keeps
/// the stream and what it holds).
fn nats_server(store: &std::path::Path) -> ServiceProcess {
    let port = free_port();
    ServiceProcess::start(
        "nats-server",
        &args(&[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            store.to_str().unwrap(),
        ]),
        port,
        "Debian's nats-server",
    )
}

/// Every message in the stream, in stream order, as JSON.
async fn stream_lines(url: &str, stream: &str) -> Vec<Value> {
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut lines = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let message = stream.get_raw_message(seq).await.unwrap();
        lines.push(serde_json::from_slice(&message.payload).unwrap());
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_a_jetstream_stream_across_an_outage_and_a_sigkill_exactly_once() {
    flotilla_loadtest::install_crypto_provider();
    let store = tempfile::tempdir().unwrap();
    let mut nats = nats_server(store.path());
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let subject = "osquery.result.jetstream";
    {
        let client = async_nats::connect(&url).await.unwrap();
        async_nats::jetstream::new(client)
            .create_stream(async_nats::jetstream::stream::Config {
                name: "OSQUERY_RESULTS".into(),
                subjects: vec![subject.into()],
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--listen",
        &listen,
        "--node-name",
        "nats-test-node",
        "--osquery-result-log-plugin",
        "nats",
        "--nats-server",
        &url,
        "--nats-result-subject",
        subject,
        "--osquery-log-batch-lines",
        "7",
    ];
    let mut server = Server::start(dir.path(), &flags);
    let mut sent = Sent::enrolled(&server, "nats-host").await;
    let arrived = async |count: usize| {
        let url = url.clone();
        eventually_within(&format!("{count} lines in the stream"), WAIT, move || {
            let url = url.clone();
            async move { stream_lines(&url, "OSQUERY_RESULTS").await.len() >= count }
        })
        .await;
    };

    sent.send(0..30).await;
    arrived(30).await;

    // NATS goes away: osquery's posts are still accepted (spooled), none lost.
    nats.stop();
    sent.send(30..60).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An SRE sees the lines waiting, and for how long.
    let labels = r#"{log="result",destination="nats"}"#;
    let metrics = server.metrics_text().await;
    assert!(sample(&metrics, &format!("flotilla_log_spool_bytes{labels}")) > 0.0);
    assert!(
        sample(
            &metrics,
            &format!("flotilla_log_spool_oldest_seconds{labels}")
        ) >= 2.0
    );
    nats.restart();
    sent.send(60..80).await;
    arrived(80).await;
    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            &format!("flotilla_log_lines_spooled_total{labels}")
        ),
        80.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("flotilla_log_lines_delivered_total{labels}")
        ),
        80.0
    );
    assert_eq!(
        sample(&metrics, &format!("flotilla_log_spool_bytes{labels}")),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("flotilla_log_spool_oldest_seconds{labels}")
        ),
        0.0
    );

    // flotilla dies right after accepting lines; started again, it delivers them.
    sent.send(80..100).await;
    server.kill();
    let server = Server::start(dir.path(), &flags);
    sent.send(100..110).await;
    arrived(110).await;

    // Every line once, in order: resent batches carry the same message ids, and the stream's
    // duplicate window drops them.
    let lines = stream_lines(&url, "OSQUERY_RESULTS").await;
    assert_eq!(seqs_of("nats-host", &lines), sent.seqs);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_stream_results_and_status_logs_are_published_on_their_subjects() {
    flotilla_loadtest::install_crypto_provider();
    let store = tempfile::tempdir().unwrap();
    let nats = nats_server(store.path());
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let client = async_nats::connect(&url).await.unwrap();
    let mut results = client.subscribe("osquery.result").await.unwrap();
    let mut statuses = client.subscribe("osquery.status").await.unwrap();
    client.flush().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    // The default subjects, for both logs.
    let server = Server::start(
        dir.path(),
        &[
            "--osquery-result-log-plugin",
            "nats",
            "--osquery-status-log-plugin",
            "nats",
            "--nats-server",
            &url,
        ],
    );
    let mut sent = Sent::enrolled(&server, "plain-host").await;
    sent.send(0..25).await;
    let status = serde_json::json!({"hostIdentifier": "plain-host", "severity": 0,
        "filename": "tls.cpp", "line": 1, "message": "hello over NATS"});
    sent.agent
        .log(LogType::Status, vec![status.clone()], false)
        .await
        .unwrap();

    let mut received = Vec::new();
    while received.len() < 25 {
        let message = tokio::time::timeout(WAIT, results.next())
            .await
            .expect("result lines within a minute")
            .unwrap();
        received.push(serde_json::from_slice(&message.payload).unwrap());
    }
    assert_eq!(seqs_of("plain-host", &received), sent.seqs);
    let message = tokio::time::timeout(WAIT, statuses.next())
        .await
        .expect("a status line within a minute")
        .unwrap();
    let line: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(line["message"], "hello over NATS");
    assert_eq!(line["hostIdentifier"], "plain-host");
}

// ---------------------------------------------------------------------------------------------
// S3

const BUCKET: &str = "flotilla-logs";

/// moto's S3 server on a free port. It keeps objects in memory: a restart empties it.
fn s3_server() -> ServiceProcess {
    let port = free_port();
    ServiceProcess::start(
        "moto_server",
        &args(&["-H", "127.0.0.1", "-p", &port.to_string()]),
        port,
        "PyPI's moto[server]",
    )
}

async fn create_bucket(port: u16) {
    let response = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/{BUCKET}"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

fn s3_reader(port: u16) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap()
}

/// Every object under `prefix`: its key, its content type and its lines.
async fn objects(port: u16, prefix: &str) -> BTreeMap<String, (String, Vec<Value>)> {
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = s3_reader(port);
    let prefix = object_store::path::Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&prefix)).collect().await;
    let mut objects = BTreeMap::new();
    for meta in metas {
        let meta = meta.unwrap();
        let object = store.get(&meta.location).await.unwrap();
        let content_type = object
            .attributes
            .get(&object_store::Attribute::ContentType)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let body = object.bytes().await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .expect("each object is gzip");
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        objects.insert(meta.location.to_string(), (content_type, lines));
    }
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_s3_as_gzip_objects_across_an_outage_and_a_sigkill() {
    flotilla_loadtest::install_crypto_provider();
    let mut s3 = s3_server();
    create_bucket(s3.port).await;
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--listen",
        &listen,
        "--node-name",
        "s3-test-node",
        "--osquery-result-log-plugin",
        "s3",
        "--s3-bucket",
        BUCKET,
        "--s3-prefix",
        "osquery",
        "--s3-endpoint-url",
        &endpoint,
        "--s3-force-path-style",
        "--s3-region",
        "us-east-1",
        "--s3-flush-interval",
        "1s",
    ];
    // Credentials from the environment, as the AWS chain has it.
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let mut server = Server::start_with_env(dir.path(), &flags, &env);
    let mut sent = Sent::enrolled(&server, "s3-host").await;
    // Objects seen so far, by key: moto forgets them when it restarts, keys never repeat.
    let mut seen = BTreeMap::new();
    let port = s3.port;
    let arrived = async |seen: &mut BTreeMap<String, (String, Vec<Value>)>, count: usize| {
        for _ in 0..600 {
            seen.extend(objects(port, "osquery/result").await);
            if seen.values().map(|(_, lines)| lines.len()).sum::<usize>() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{count} lines did not reach S3 within a minute");
    };

    sent.send(0..30).await;
    sent.send(30..40).await;
    arrived(&mut seen, 40).await;

    // The store goes away (and comes back empty): nothing accepted is lost.
    s3.stop();
    sent.send(40..70).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s3.restart();
    create_bucket(s3.port).await;
    sent.send(70..80).await;
    arrived(&mut seen, 80).await;
    let metrics = server.metrics_text().await;
    let labels = r#"{log="result",destination="s3"}"#;
    assert!(
        sample(
            &metrics,
            &format!("flotilla_log_delivery_failures_total{labels}")
        ) >= 1.0
    );
    assert_eq!(
        sample(&metrics, &format!("flotilla_log_spool_bytes{labels}")),
        0.0
    );

    // Killed right after accepting lines, started again: they are delivered.
    sent.send(80..100).await;
    server.kill();
    let server = Server::start_with_env(dir.path(), &flags, &env);
    sent.send(100..110).await;
    arrived(&mut seen, 110).await;

    let mut all = Vec::new();
    for (key, (content_type, lines)) in &seen {
        // osquery/result/YYYY/MM/DD/HH/<node>-<segment>.json.gz, the hour in UTC.
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 7, "{key}");
        assert_eq!(&parts[..2], ["osquery", "result"], "{key}");
        let hour = chrono::NaiveDateTime::parse_from_str(
            &format!("{}-{}-{} {}:00", parts[2], parts[3], parts[4], parts[5]),
            "%Y-%m-%d %H:%M",
        )
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        let age = chrono::Utc::now().naive_utc() - hour;
        assert!(age.num_minutes() >= 0 && age.num_minutes() < 120, "{key}");
        let name = parts[6]
            .strip_prefix("s3-test-node-")
            .and_then(|n| n.strip_suffix(".json.gz"))
            .unwrap_or_else(|| panic!("{key}"));
        assert!(
            name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit()),
            "{key}"
        );
        assert_eq!(content_type, "application/gzip");
        all.extend(seqs_of("s3-host", lines));
    }
    // Every line exactly once: an object sent again (after the kill) has the same key.
    all.sort_unstable();
    assert_eq!(all, sent.seqs);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_at_start_and_the_server_still_takes_logs() {
    flotilla_loadtest::install_crypto_provider();
    let s3 = s3_server();
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let secret = "do-not-print-this-secret-9d41";
    let server = Server::start_logging_to(
        dir.path(),
        &[
            "--osquery-result-log-plugin",
            "s3",
            "--s3-bucket",
            "no-such-bucket",
            "--s3-endpoint-url",
            &endpoint,
            "--s3-force-path-style",
            "--s3-access-key-id",
            "test",
            "--s3-secret-access-key",
            secret,
            "--s3-flush-interval",
            "1s",
        ],
        &log,
    );
    let mut sent = Sent::enrolled(&server, "bucketless").await;
    sent.send(0..5).await;
    let health = server
        .client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let log = log.clone();
    eventually_within("the bucket named in the log", WAIT, || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("cannot take lines yet") && text.contains("no-such-bucket")
        }
    })
    .await;
    let metrics = server.metrics_text().await;
    let labels = r#"{log="result",destination="s3"}"#;
    assert!(sample(&metrics, &format!("flotilla_log_spool_bytes{labels}")) > 0.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "the secret key was logged");
}

// ---------------------------------------------------------------------------------------------
// Kafka

/// A private tansu broker on a free port, its log kept in SQLite under `store` (so a restart
/// keeps the topic and what it holds). tansu opens `sqlite://NAME` relative to its working
/// directory, which is `store`.
fn kafka_broker(store: &std::path::Path) -> ServiceProcess {
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    ServiceProcess::start_in(
        Some(store),
        "tansu",
        &args(&[
            "broker",
            "--kafka-cluster-id",
            "flotilla-tests",
            "--kafka-listener-url",
            &listener,
            "--kafka-advertised-listener-url",
            &listener,
            "--storage-engine",
            "sqlite://tansu.db",
        ]),
        port,
        "crates.io's tansu: cargo install tansu --locked --features libsql",
    )
}

async fn kafka_client(port: u16) -> rskafka::client::Client {
    rskafka::client::ClientBuilder::new(vec![format!("127.0.0.1:{port}")])
        .build()
        .await
        .expect("a Kafka client")
}

/// Every record of partition 0 of `topic`, in offset order, as JSON.
async fn topic_lines(port: u16, topic: &str) -> Vec<Value> {
    let partition = kafka_client(port)
        .await
        .partition_client(
            topic,
            0,
            rskafka::client::partition::UnknownTopicHandling::Retry,
        )
        .await
        .unwrap();
    let end = partition
        .get_offset(rskafka::client::partition::OffsetAt::Latest)
        .await
        .unwrap();
    let mut lines = Vec::new();
    let mut offset = 0;
    while offset < end {
        let (records, _high_watermark) = partition
            .fetch_records(offset, 1..1_000_000, 1_000)
            .await
            .unwrap();
        if records.is_empty() {
            break;
        }
        for record in records {
            offset = record.offset + 1;
            let value = record
                .record
                .value
                .expect("each record has the line as its value");
            lines.push(serde_json::from_slice(&value).unwrap());
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_a_kafka_topic_across_a_broker_restart_and_a_sigkill() {
    flotilla_loadtest::install_crypto_provider();
    let store = tempfile::tempdir().unwrap();
    let mut broker = kafka_broker(store.path());
    let topic = "osquery_results";
    kafka_client(broker.port)
        .await
        .controller_client()
        .unwrap()
        .create_topic(topic, 1, 1, 5_000)
        .await
        .expect("the topic is created");
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    let flags = [
        "--listen",
        &listen,
        "--osquery-result-log-plugin",
        "kafka",
        "--kafka-brokers",
        &brokers,
        "--osquery-result-log-kafka-topic",
        topic,
        "--osquery-log-batch-lines",
        "7",
    ];
    let mut server = Server::start(dir.path(), &flags);
    let mut sent = Sent::enrolled(&server, "kafka-host").await;
    let port = broker.port;
    let arrived = async |count: usize| {
        eventually_within(
            &format!("{count} lines in the topic"),
            WAIT,
            move || async move { topic_lines(port, topic).await.len() >= count },
        )
        .await;
    };

    sent.send(0..30).await;
    arrived(30).await;

    // The broker goes away: osquery's posts are still accepted (spooled), none lost.
    broker.stop();
    sent.send(30..60).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let labels = r#"{log="result",destination="kafka"}"#;
    let metrics = server.metrics_text().await;
    assert!(sample(&metrics, &format!("flotilla_log_spool_bytes{labels}")) > 0.0);
    broker.restart();
    sent.send(60..80).await;
    arrived(80).await;
    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            &format!("flotilla_log_lines_delivered_total{labels}")
        ),
        80.0
    );

    // flotilla dies right after accepting lines; started again, it delivers them.
    sent.send(80..100).await;
    server.kill();
    let server = Server::start(dir.path(), &flags);
    sent.send(100..110).await;
    arrived(110).await;

    // Every line, in order. Kafka takes no message ids, so a batch produced just before the
    // kill may come again after it (at least once): each line's first arrival is in order.
    let lines = topic_lines(port, topic).await;
    let mut first_arrivals = Vec::new();
    for seq in seqs_of("kafka-host", &lines) {
        if !first_arrivals.contains(&seq) {
            first_arrivals.push(seq);
        }
    }
    assert_eq!(first_arrivals, sent.seqs);
    drop(server);
}
