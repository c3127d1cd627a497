//! The host registry and host actors, driven as the osquery endpoints drive them, on a paused
//! clock with the in-memory store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flotilla_engine::detail::Row;
use flotilla_engine::enroll::{EnrollError, EnrollRequest};
use flotilla_engine::host::{DetailAnswer, HostResults};
use flotilla_engine::live::{HostResult, LiveAnswer, LiveQuery, ResultSink};
use flotilla_engine::memory_store::MemoryStore;
use flotilla_engine::{CampaignId, EngineConfig, HostError, Hosts, NodeKey, unix_now};
use parking_lot::Mutex;

#[derive(Default)]
struct Collect(Mutex<Vec<HostResult>>);

impl ResultSink for Collect {
    fn deliver(&self, result: HostResult) {
        self.0.lock().push(result);
    }
}

fn row(pairs: &[(&str, &str)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn enroll_request(identifier: &str) -> EnrollRequest {
    EnrollRequest {
        enroll_secret: "secret".into(),
        host_identifier: identifier.into(),
        os_version: Some(row(&[("platform", "ubuntu"), ("name", "Ubuntu")])),
        system_info: Some(row(&[
            ("hostname", identifier),
            ("uuid", &format!("UUID-{identifier}")),
        ])),
        osquery_info: Some(row(&[("version", "5.23.1")])),
    }
}

fn all_details() -> HostResults {
    HostResults {
        details: vec![
            DetailAnswer {
                suffix: "osquery_flags".into(),
                rows: vec![
                    row(&[("name", "distributed_interval"), ("value", "10")]),
                    row(&[("name", "config_refresh"), ("value", "60")]),
                ],
            },
            DetailAnswer {
                suffix: "system_info".into(),
                rows: vec![row(&[("hostname", "renamed"), ("cpu_brand", "Xeon")])],
            },
        ],
        live: vec![],
        labels: vec![],
        policies: vec![],
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        host_idle_timeout: Duration::from_secs(30),
        flush_interval: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

async fn start(store: Arc<MemoryStore>, sink: Arc<Collect>) -> Hosts {
    store.ensure_secret_for_tests("secret");
    Hosts::start(store, config(), sink).await.unwrap()
}

trait SecretForTests {
    fn ensure_secret_for_tests(&self, secret: &str);
}

impl SecretForTests for MemoryStore {
    fn ensure_secret_for_tests(&self, secret: &str) {
        self.secrets
            .lock()
            .push(flotilla_engine::store::EnrollSecret {
                secret: secret.into(),
                team: None,
            });
    }
}

#[tokio::test(start_paused = true)]
async fn new_host_gets_details_then_nothing_without_an_actor() {
    let hosts = start(Arc::default(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();

    let first = hosts.read(key.as_str(), unix_now()).await.unwrap();
    assert!(
        first
            .queries
            .iter()
            .any(|q| &*q.name == "fleet_detail_query_system_info")
    );
    assert_eq!(hosts.active_actors(), 1);

    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    let (record, _) = hosts.record(flotilla_engine::HostId(1)).unwrap();
    assert_eq!(&*record.hostname, "renamed");
    assert_eq!(record.intervals.distributed, 10);

    let second = hosts.read(key.as_str(), unix_now()).await.unwrap();
    assert!(second.is_empty(), "details are fresh, nothing else pending");

    // Quiet past the idle timeout: the actor goes, the host stays answerable.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(hosts.active_actors(), 0);
    let before = hosts.counters().reads_without_actor.get();
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(hosts.counters().reads_without_actor.get(), before + 1);
    assert_eq!(hosts.active_actors(), 0, "an empty check-in wakes no actor");
}

#[tokio::test(start_paused = true)]
async fn a_host_checking_in_with_nothing_to_do_lets_its_actor_go() {
    let hosts = start(Arc::default(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    assert!(
        !hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    assert_eq!(hosts.active_actors(), 1);
    // Every 10 s an empty check-in, as osquery does: those reads do not keep the actor.
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            hosts
                .read(key.as_str(), unix_now())
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        hosts.active_actors(),
        0,
        "idle after the timeout despite check-ins"
    );
    let before = hosts.counters().reads_without_actor.get();
    hosts.read(key.as_str(), unix_now()).await.unwrap();
    assert_eq!(hosts.counters().reads_without_actor.get(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn live_query_is_handed_out_until_answered_and_the_answer_reaches_the_sink() {
    let sink = Arc::new(Collect::default());
    let hosts = start(Arc::default(), sink.clone()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(hosts.active_actors(), 0);

    let query = LiveQuery::new(CampaignId(42), "SELECT * FROM users".into());
    hosts
        .enqueue(flotilla_engine::HostId(1), query)
        .await
        .unwrap();
    for _ in 0..2 {
        let work = hosts.read(key.as_str(), unix_now()).await.unwrap();
        let names: Vec<&str> = work.queries.iter().map(|q| &*q.name).collect();
        assert_eq!(
            names,
            vec!["fleet_distributed_query_42"],
            "resent until answered"
        );
        assert_eq!(&*work.queries[0].discovery, "SELECT 1");
    }
    // A pending live query keeps the actor alive however long the host takes.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(hosts.active_actors(), 1);

    let answer = LiveAnswer {
        campaign: CampaignId(42),
        rows: r#"[{"username":"root"}]"#.into(),
        row_count: 1,
        error: None,
        stats: None,
    };
    hosts
        .write(
            key.as_str(),
            unix_now(),
            HostResults {
                details: vec![],
                live: vec![answer],
                labels: vec![],
                policies: vec![],
            },
        )
        .await
        .unwrap();
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    let delivered = sink.0.lock();
    assert_eq!(delivered.len(), 1);
    assert_eq!(&*delivered[0].hostname, "renamed");
    assert_eq!(&*delivered[0].answer.rows, r#"[{"username":"root"}]"#);
}

#[tokio::test(start_paused = true)]
async fn cancelled_query_is_no_longer_handed_out() {
    let hosts = start(Arc::default(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    hosts
        .enqueue(
            flotilla_engine::HostId(1),
            LiveQuery::new(CampaignId(7), "SELECT 1".into()),
        )
        .await
        .unwrap();
    hosts.cancel(flotilla_engine::HostId(1), CampaignId(7));
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn reenrollment_retires_the_old_key_and_keeps_one_host() {
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let first = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    let second = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    assert_ne!(first, second);
    assert!(matches!(
        hosts.read(first.as_str(), unix_now()).await,
        Err(HostError::UnknownNodeKey)
    ));
    assert!(hosts.read(second.as_str(), unix_now()).await.is_ok());
    assert_eq!(hosts.len(), 1);
    assert_eq!(store.hosts.lock().len(), 1);
    assert_eq!(hosts.counters().reenrollments.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn enrollment_is_refused_with_a_bad_secret_or_a_down_store() {
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let mut bad = enroll_request("h1");
    bad.enroll_secret = "wrong".into();
    assert!(matches!(
        hosts.enroll(bad, unix_now()).await,
        Err(EnrollError::InvalidSecret)
    ));
    store.down.store(true, Ordering::Relaxed);
    assert!(matches!(
        hosts.enroll(enroll_request("h1"), unix_now()).await,
        Err(EnrollError::Unavailable(_))
    ));
    assert!(hosts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn unknown_keys_are_refused_everywhere() {
    let hosts = start(Arc::default(), Arc::default()).await;
    let stranger = NodeKey::generate();
    assert!(hosts.authenticate(stranger.as_str(), 1).await.is_err());
    assert!(hosts.read(stranger.as_str(), 1).await.is_err());
    assert!(
        hosts
            .write(stranger.as_str(), 1, all_details())
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn writer_batches_seen_times_and_retries_after_a_store_outage() {
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let key = hosts.enroll(enroll_request("h1"), 1_000).await.unwrap();
    hosts
        .write(key.as_str(), 1_000, all_details())
        .await
        .unwrap();

    // Many check-ins within the granularity cost no seen-time write.
    for t in 1_001..1_030 {
        hosts.read(key.as_str(), t).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let seen_writes = |store: &MemoryStore| {
        store
            .flushes
            .lock()
            .iter()
            .flatten()
            .filter(|(_, u)| u.seen_time.is_some())
            .count()
    };
    let vitals_writes = store
        .flushes
        .lock()
        .iter()
        .flatten()
        .filter(|(_, u)| u.vitals.is_some())
        .count();
    assert_eq!(vitals_writes, 1, "the detail answers were written once");
    assert_eq!(
        seen_writes(&store),
        0,
        "29 s of check-ins: below the 60 s granularity"
    );

    // The store goes down: the writer keeps what it has and writes it when the store returns.
    store.down.store(true, Ordering::Relaxed);
    hosts.read(key.as_str(), 1_100).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(hosts.counters().flush_failures.get() >= 1);
    store.down.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let last = store
        .flushes
        .lock()
        .iter()
        .flatten()
        .filter_map(|(_, u)| u.seen_time)
        .max();
    assert_eq!(last, Some(1_100));

    // Shutdown writes even a recent last-seen time.
    hosts.read(key.as_str(), 1_110).await.unwrap();
    hosts.flush().await.unwrap();
    let last = store
        .flushes
        .lock()
        .iter()
        .flatten()
        .filter_map(|(_, u)| u.seen_time)
        .max();
    assert_eq!(last, Some(1_110));
}

#[tokio::test(start_paused = true)]
async fn a_removed_host_is_refused_and_its_actor_stopped() {
    let hosts = start(Arc::default(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    hosts.read(key.as_str(), unix_now()).await.unwrap();
    assert_eq!(hosts.active_actors(), 1);
    assert!(hosts.remove(flotilla_engine::HostId(1)));
    assert!(matches!(
        hosts.read(key.as_str(), unix_now()).await,
        Err(HostError::UnknownNodeKey)
    ));
    assert!(hosts.is_empty());
    assert!(!hosts.remove(flotilla_engine::HostId(1)));
}

#[tokio::test(start_paused = true)]
async fn dynamic_labels_run_for_the_right_platform_and_again_when_labels_change() {
    use flotilla_engine::labels::LabelQuery;
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    hosts.set_label_queries(vec![
        LabelQuery::new(10, "SELECT 1 FROM processes WHERE name = 'nginx'", ""),
        LabelQuery::new(11, "SELECT 1", "windows"),
    ]);
    let work = hosts.read(key.as_str(), unix_now()).await.unwrap();
    let names: Vec<&str> = work.queries.iter().map(|q| &*q.name).collect();
    assert_eq!(
        names,
        vec!["fleet_label_query_10"],
        "the Windows-only label is not sent to Ubuntu"
    );

    let answers = HostResults {
        labels: vec![(10, Some(true))],
        ..HostResults::default()
    };
    hosts
        .write(key.as_str(), unix_now(), answers)
        .await
        .unwrap();
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let written: Vec<(u64, bool)> = store
        .flushes
        .lock()
        .iter()
        .flatten()
        .filter_map(|(_, u)| u.labels.clone())
        .flatten()
        .collect();
    assert_eq!(written, vec![(10, true)]);

    hosts.set_label_queries(vec![LabelQuery::new(12, "SELECT 1", "")]);
    let work = hosts.read(key.as_str(), unix_now()).await.unwrap();
    assert_eq!(
        &*work.queries[0].name, "fleet_label_query_12",
        "a changed label set runs at once"
    );
}

fn orbit_request(uuid: &str) -> flotilla_engine::enroll::OrbitEnrollRequest {
    flotilla_engine::enroll::OrbitEnrollRequest {
        enroll_secret: "secret".into(),
        hardware_uuid: uuid.into(),
        hostname: "orbit-host".into(),
        platform: "ubuntu".into(),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn orbit_and_osquery_of_one_machine_share_one_registered_host() {
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let now = unix_now();

    let mut no_uuid = orbit_request("");
    assert!(matches!(
        hosts.enroll_orbit(no_uuid.clone(), now).await,
        Err(EnrollError::MissingHardwareUuid)
    ));
    no_uuid.hardware_uuid = "U-1".into();
    no_uuid.enroll_secret = "wrong".into();
    assert!(matches!(
        hosts.enroll_orbit(no_uuid, now).await,
        Err(EnrollError::InvalidSecret)
    ));

    let orbit_key = hosts.enroll_orbit(orbit_request("U-1"), now).await.unwrap();
    let seen_by_orbit = hosts
        .authenticate_orbit(orbit_key.as_str(), now)
        .await
        .unwrap();
    assert_eq!(seen_by_orbit.node_key, None, "osquery has not enrolled yet");
    assert_eq!(hosts.len(), 1);

    // osqueryd started by orbit uses the hardware UUID as its identifier.
    let node_key = hosts.enroll(enroll_request("U-1"), now).await.unwrap();
    assert_eq!(hosts.len(), 1, "one machine, one host");
    let record = hosts.authenticate(node_key.as_str(), now).await.unwrap();
    assert_eq!(record.id, seen_by_orbit.id);
    assert_eq!(
        hosts
            .authenticate_orbit(orbit_key.as_str(), now)
            .await
            .unwrap()
            .id,
        record.id,
        "orbit's key still works after osquery enrolled"
    );

    // orbit enrolls again: the old key is refused (orbit's cue to re-enroll), the new one works.
    let new_orbit_key = hosts.enroll_orbit(orbit_request("U-1"), now).await.unwrap();
    assert!(matches!(
        hosts.authenticate_orbit(orbit_key.as_str(), now).await,
        Err(HostError::UnknownOrbitKey)
    ));
    assert!(
        hosts
            .authenticate_orbit(new_orbit_key.as_str(), now)
            .await
            .is_ok()
    );
    assert!(hosts.authenticate(node_key.as_str(), now).await.is_ok());
    assert_eq!((hosts.len(), store.hosts.lock().len()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn device_tokens_authenticate_for_an_hour_and_survive_one_rotation() {
    use flotilla_engine::device::DEVICE_TOKEN_TTL_SECS;
    use flotilla_engine::hosts::DeviceTokenError;
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let now = unix_now();
    let a = hosts.enroll_orbit(orbit_request("U-A"), now).await.unwrap();
    let b = hosts.enroll_orbit(orbit_request("U-B"), now).await.unwrap();
    let a = hosts.authenticate_orbit(a.as_str(), now).await.unwrap().id;
    let b = hosts.authenticate_orbit(b.as_str(), now).await.unwrap().id;

    assert!(matches!(
        hosts.set_device_token(a, "", now).await,
        Err(DeviceTokenError::Invalid(_))
    ));
    assert!(matches!(
        hosts.set_device_token(a, "has space", now).await,
        Err(DeviceTokenError::Invalid(_))
    ));
    hosts.set_device_token(a, "tok-1", now).await.unwrap();
    assert!(matches!(
        hosts.set_device_token(b, "tok-1", now).await,
        Err(DeviceTokenError::Conflict)
    ));
    assert_eq!(hosts.authenticate_device("tok-1", now).await.unwrap().id, a);

    hosts.set_device_token(a, "tok-2", now + 10).await.unwrap();
    assert_eq!(
        hosts
            .authenticate_device("tok-2", now + 10)
            .await
            .unwrap()
            .id,
        a
    );
    assert_eq!(
        hosts
            .authenticate_device("tok-1", now + 10)
            .await
            .unwrap()
            .id,
        a,
        "the replaced token keeps a page opened before the rotation working"
    );
    hosts.set_device_token(a, "tok-3", now + 20).await.unwrap();
    assert!(matches!(
        hosts.authenticate_device("tok-1", now + 20).await,
        Err(HostError::UnknownDeviceToken)
    ));
    // A token freed by a rotation may be taken by another host.
    hosts.set_device_token(b, "tok-1", now + 21).await.unwrap();
    assert_eq!(
        hosts
            .authenticate_device("tok-1", now + 21)
            .await
            .unwrap()
            .id,
        b
    );
    assert_eq!(
        hosts
            .authenticate_device("tok-3", now + 21)
            .await
            .unwrap()
            .id,
        a
    );

    let expired = now + 20 + DEVICE_TOKEN_TTL_SECS;
    assert!(hosts.authenticate_device("tok-3", expired).await.is_err());
    assert!(hosts.authenticate_device("nope", now).await.is_err());
    assert_eq!(hosts.counters().device_auth_failures.get(), 3);

    // A deleted host's token stops working at once.
    hosts.remove(b);
    assert!(hosts.authenticate_device("tok-1", now + 22).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn policies_go_to_the_hosts_they_apply_to_and_only_their_answers_count() {
    use flotilla_engine::TeamId;
    use flotilla_engine::policies::PolicyQuery;
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let key = hosts
        .enroll(enroll_request("h1"), unix_now())
        .await
        .unwrap();
    hosts
        .write(key.as_str(), unix_now(), all_details())
        .await
        .unwrap();
    hosts.set_policy_queries(vec![
        PolicyQuery::new(20, "SELECT 1 FROM os_version", "", None),
        PolicyQuery::new(21, "SELECT 1", "darwin,windows", None),
        PolicyQuery::new(22, "SELECT 1", "", Some(TeamId(5))),
        PolicyQuery::new(23, "SELECT 1", "linux", None),
    ]);
    let work = hosts.read(key.as_str(), unix_now()).await.unwrap();
    let mut names: Vec<&str> = work.queries.iter().map(|q| &*q.name).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["fleet_policy_query_20", "fleet_policy_query_23"],
        "neither another platform's nor another team's policies"
    );

    let answers = HostResults {
        policies: vec![
            (20, Some(true)),
            (23, None),
            (21, Some(false)),
            (22, Some(true)),
            (99, Some(true)),
        ],
        ..HostResults::default()
    };
    hosts
        .write(key.as_str(), unix_now(), answers)
        .await
        .unwrap();
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty(),
        "answered: not due again before the interval"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let written: Vec<(u64, Option<bool>)> = store
        .flushes
        .lock()
        .iter()
        .flatten()
        .filter_map(|(_, u)| u.policies.clone())
        .flatten()
        .collect();
    assert_eq!(
        written,
        vec![(20, Some(true)), (23, None)],
        "answers to policies the host was not handed are dropped"
    );

    // A changed set goes out at once; one with nothing for this host is done without
    // sending anything, and the actor does not stay for it.
    hosts.set_policy_queries(vec![PolicyQuery::new(22, "SELECT 1", "", Some(TeamId(5)))]);
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(hosts.active_actors(), 0);
    assert!(
        hosts
            .read(key.as_str(), unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(hosts.active_actors(), 0, "answered from the record");
    let marked = store.flushes.lock().iter().flatten().any(|(_, u)| {
        u.policies.as_ref().is_some_and(Vec::is_empty) && u.policy_updated_at.is_some()
    });
    assert!(marked, "the round is recorded as done");

    // Moving the host to the team makes its policies go out at the next check-in.
    hosts.set_team(flotilla_engine::HostId(1), Some(TeamId(5)));
    let work = hosts.read(key.as_str(), unix_now()).await.unwrap();
    let names: Vec<&str> = work.queries.iter().map(|q| &*q.name).collect();
    assert_eq!(names, vec!["fleet_policy_query_22"]);
}

#[tokio::test(start_paused = true)]
async fn answers_another_node_took_count_here_unless_older_than_the_label_set() {
    use flotilla_engine::labels::LabelQuery;
    use flotilla_engine::relay::AnswerTimes;
    let store = Arc::new(MemoryStore::default());
    let hosts = start(store.clone(), Arc::default()).await;
    let now = unix_now();
    let key = hosts.enroll(enroll_request("h1"), now).await.unwrap();
    let id = hosts.authenticate(key.as_str(), now).await.unwrap().id;
    hosts.set_label_queries(vec![LabelQuery::new(10, "SELECT 1", "")]);
    let names = |work: &flotilla_engine::host::ReadWork| -> Vec<String> {
        work.queries.iter().map(|q| q.name.to_string()).collect()
    };
    let due = names(&hosts.read(key.as_str(), now).await.unwrap());
    assert!(
        due.iter().any(|n| n.starts_with("fleet_detail_query_")),
        "{due:?}"
    );

    // The host answered its details on another node, and its labels too, but before this
    // node's label set was installed: that answer was to an older set and does not count.
    let later = now + 1;
    hosts.answered_elsewhere(&[(
        id,
        AnswerTimes {
            detail: later,
            label: now - 5,
            policy: 0,
        },
    )]);
    let due = names(&hosts.read(key.as_str(), later).await.unwrap());
    assert_eq!(due, vec!["fleet_label_query_10".to_owned()]);

    // Its answer to the current set, taken on the other node: nothing is asked again here.
    hosts.answered_elsewhere(&[(
        id,
        AnswerTimes {
            detail: later,
            label: later,
            policy: 0,
        },
    )]);
    let due = names(&hosts.read(key.as_str(), later).await.unwrap());
    assert_eq!(due, Vec::<String>::new(), "nothing is asked again here");
}
