//! Campaigns driven end to end inside the engine — hosts checking in, answering, subscribers
//! watching — on a paused clock with the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use flotilla_engine::campaign::{CampaignEvent, Subscription};
use flotilla_engine::campaign_state::Progress;
use flotilla_engine::campaigns::NewCampaign;
use flotilla_engine::detail::Row;
use flotilla_engine::enroll::EnrollRequest;
use flotilla_engine::host::{DetailAnswer, HostResults};
use flotilla_engine::live::LiveAnswer;
use flotilla_engine::memory_store::MemoryStore;
use flotilla_engine::store::{CampaignRecord, EnrollSecret};
use flotilla_engine::{
    CampaignConfig, CampaignError, CampaignId, Campaigns, Engine, EngineConfig, EngineStores,
    HostId, Hosts, NodeKey, unix_now,
};

struct Fleet {
    store: Arc<MemoryStore>,
    hosts: Hosts,
    campaigns: Campaigns,
    keys: Vec<NodeKey>,
}

fn row(pairs: &[(&str, &str)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `online` hosts checking in now and `offline` ones last seen an hour ago; details filled.
async fn fleet(online: usize, offline: usize, config: CampaignConfig) -> Fleet {
    let store = Arc::new(MemoryStore::default());
    store.secrets.lock().push(EnrollSecret {
        secret: "s".into(),
        team: None,
    });
    let stores = EngineStores {
        hosts: store.clone(),
        campaigns: store.clone(),
    };
    let engine = Engine::start_local(stores, EngineConfig::default(), config)
        .await
        .unwrap();
    let (hosts, campaigns) = (engine.hosts().clone(), engine.campaigns().clone());
    let mut keys = Vec::new();
    for i in 0..online + offline {
        let seen = if i < online {
            unix_now()
        } else {
            unix_now() - 3600
        };
        let request = EnrollRequest {
            enroll_secret: "s".into(),
            host_identifier: format!("host-{i}"),
            system_info: Some(row(&[("hostname", &format!("host-{i}"))])),
            os_version: Some(row(&[("platform", "ubuntu")])),
            osquery_info: None,
        };
        let key = hosts.enroll(request, seen).await.unwrap();
        let details = HostResults {
            details: vec![DetailAnswer {
                suffix: "uptime".into(),
                rows: vec![row(&[("total_seconds", "1")])],
            }],
            live: vec![],
            labels: vec![],
            policies: vec![],
        };
        hosts.write(key.as_str(), seen, details).await.unwrap();
        keys.push(key);
    }
    Fleet {
        store,
        hosts,
        campaigns,
        keys,
    }
}

fn new_campaign(targets: impl IntoIterator<Item = u64>) -> NewCampaign {
    NewCampaign {
        record: CampaignRecord {
            sql: "SELECT * FROM users".into(),
            query_id: None,
            user_id: Some(1),
            selected: vec![],
            created_at: unix_now(),
        },
        targets: targets.into_iter().map(HostId).collect(),
        deadline: None,
    }
}

fn answer(campaign: CampaignId, rows: usize) -> HostResults {
    let text = format!("[{}]", vec![r#"{"u":"root"}"#; rows].join(","));
    HostResults {
        details: vec![],
        live: vec![LiveAnswer {
            campaign,
            rows: text.into(),
            row_count: rows,
            error: None,
            stats: None,
        }],
        labels: vec![],
        policies: vec![],
    }
}

impl Fleet {
    /// One check-in of host `i`; answers the campaign if it was handed out. Returns whether it was.
    async fn check_in(&self, i: usize, campaign: CampaignId, rows: usize) -> bool {
        let key = self.keys[i].as_str();
        let work = self.hosts.read(key, unix_now()).await.unwrap();
        let name = format!("fleet_distributed_query_{campaign}");
        let handed_out = work.queries.iter().any(|q| *q.name == *name);
        if handed_out {
            assert_eq!(
                work.accelerate,
                Some(60),
                "a host with live work is accelerated"
            );
            self.hosts
                .write(key, unix_now(), answer(campaign, rows))
                .await
                .unwrap();
        }
        handed_out
    }
}

async fn drain(subscription: &mut Subscription) -> Vec<CampaignEvent> {
    let mut events = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_secs(120), subscription.next()).await
    {
        events.push(event);
    }
    events
}

fn statuses(events: &[CampaignEvent]) -> Vec<Progress> {
    events
        .iter()
        .filter_map(|e| match e {
            CampaignEvent::Status(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn result_hosts(events: &[CampaignEvent]) -> Vec<u64> {
    let mut hosts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            CampaignEvent::Result(r) => Some(r.result.host.0),
            _ => None,
        })
        .collect();
    hosts.sort_unstable();
    hosts
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(start_paused = true)]
async fn every_online_host_answers_once_and_the_campaign_cleans_up() {
    let fleet = fleet(3, 1, CampaignConfig::default()).await;
    let started = fleet.campaigns.start(new_campaign(1..=4)).await.unwrap();
    assert_eq!(
        (
            started.totals.count,
            started.totals.online,
            started.totals.offline
        ),
        (4, 3, 1)
    );
    let mut watcher = fleet.campaigns.subscribe(started.id).await.unwrap();
    settle().await;

    for i in 0..3 {
        assert!(
            fleet.check_in(i, started.id, 2).await,
            "host {i} gets the query"
        );
        // osquery resends after a timeout: counted once.
        fleet
            .hosts
            .write(fleet.keys[i].as_str(), unix_now(), answer(started.id, 2))
            .await
            .unwrap();
    }
    let events = drain(&mut watcher).await;
    assert!(matches!(events[0], CampaignEvent::Totals(t) if t.count == 4 && t.online == 3));
    assert_eq!(result_hosts(&events), vec![1, 2, 3]);
    let last = *statuses(&events).last().unwrap();
    assert_eq!(
        last,
        Progress {
            expected_results: 3,
            actual_results: 3,
            finished: true
        }
    );
    assert!(!watcher.overflowed());

    assert_eq!(
        fleet.campaigns.active(),
        0,
        "nothing of the campaign remains"
    );
    // The resends were ignored: by the campaign while it ran, by the router once it was gone.
    let counters = fleet.campaigns.counters();
    assert_eq!(
        counters.results_duplicate.get() + counters.results_unrouted.get(),
        3
    );
    assert_eq!(fleet.campaigns.counters().finished_all_answered.get(), 1);
    // The offline host had the query waiting; it was taken back.
    assert!(!fleet.check_in(3, started.id, 1).await);
    let outcome = fleet.store.campaigns.lock()[0]
        .1
        .clone()
        .expect("outcome recorded");
    assert_eq!((outcome.reason, outcome.responded), ("all_answered", 3));
}

#[tokio::test(start_paused = true)]
async fn answers_before_the_first_subscriber_are_kept_for_it_and_late_subscribers_see_everything() {
    let fleet = fleet(2, 0, CampaignConfig::default()).await;
    let started = fleet.campaigns.start(new_campaign(1..=2)).await.unwrap();
    settle().await;
    let mut early = fleet.campaigns.subscribe(started.id).await.unwrap();
    assert!(fleet.check_in(0, started.id, 1).await);
    settle().await;
    let mut late = fleet.campaigns.subscribe(started.id).await.unwrap();
    assert!(fleet.check_in(1, started.id, 1).await);
    let (early, late) = (drain(&mut early).await, drain(&mut late).await);
    assert_eq!(result_hosts(&early), vec![1, 2]);
    assert_eq!(
        result_hosts(&late),
        vec![1, 2],
        "a late subscriber gets every result"
    );

    // All answers in before anyone watched: the campaign waits for its first subscriber.
    let started = fleet.campaigns.start(new_campaign(1..=2)).await.unwrap();
    settle().await;
    assert!(fleet.check_in(0, started.id, 1).await);
    assert!(fleet.check_in(1, started.id, 1).await);
    settle().await;
    assert_eq!(fleet.campaigns.active(), 1);
    let mut watcher = fleet.campaigns.subscribe(started.id).await.unwrap();
    let events = drain(&mut watcher).await;
    assert_eq!(result_hosts(&events), vec![1, 2]);
    assert!(statuses(&events).last().unwrap().finished);
    assert_eq!(fleet.campaigns.active(), 0);
}

#[tokio::test(start_paused = true)]
async fn stop_deadline_and_abandonment_each_end_the_campaign_and_clear_mailboxes() {
    let config = CampaignConfig {
        subscriber_grace: Duration::from_secs(60),
        ..CampaignConfig::default()
    };
    let fleet = fleet(2, 0, config).await;

    let stopped = fleet.campaigns.start(new_campaign(1..=2)).await.unwrap();
    let mut watcher = fleet.campaigns.subscribe(stopped.id).await.unwrap();
    assert!(fleet.campaigns.stop(stopped.id));
    let events = drain(&mut watcher).await;
    assert!(statuses(&events).last().unwrap().finished);

    let mut expiring = new_campaign(1..=2);
    expiring.deadline = Some(Duration::from_secs(30));
    let expiring = fleet.campaigns.start(expiring).await.unwrap();
    let _watcher = fleet.campaigns.subscribe(expiring.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;

    let abandoned = fleet.campaigns.start(new_campaign(1..=2)).await.unwrap();
    let watcher = fleet.campaigns.subscribe(abandoned.id).await.unwrap();
    drop(watcher);
    tokio::time::sleep(Duration::from_secs(62)).await;

    assert_eq!(fleet.campaigns.active(), 0);
    let counters = fleet.campaigns.counters();
    assert_eq!(counters.finished_stopped.get(), 1);
    assert_eq!(counters.finished_deadline.get(), 1);
    assert_eq!(counters.finished_no_subscribers.get(), 1);
    for i in 0..2 {
        for id in [stopped.id, expiring.id, abandoned.id] {
            assert!(
                !fleet.check_in(i, id, 1).await,
                "host {i} still had campaign {id}"
            );
        }
    }
    // With nothing pending, the host actors go idle again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(fleet.hosts.active_actors(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_cannot_keep_up_is_told_and_dropped_while_others_continue() {
    let config = CampaignConfig {
        subscriber_buffer: 4,
        ..CampaignConfig::default()
    };
    let fleet = fleet(20, 0, config).await;
    let started = fleet.campaigns.start(new_campaign(1..=20)).await.unwrap();
    let mut slow = fleet.campaigns.subscribe(started.id).await.unwrap();
    let mut fast = fleet.campaigns.subscribe(started.id).await.unwrap();
    let reader = tokio::spawn(async move { drain(&mut fast).await });
    settle().await;
    for i in 0..20 {
        assert!(fleet.check_in(i, started.id, 1).await);
        tokio::task::yield_now().await;
    }
    let fast_events = reader.await.unwrap();
    assert_eq!(
        result_hosts(&fast_events).len(),
        20,
        "the fast subscriber got every result"
    );
    let slow_events = drain(&mut slow).await;
    assert!(
        slow.overflowed(),
        "the slow subscriber learns why it was dropped"
    );
    assert!(result_hosts(&slow_events).len() < 20);
    assert_eq!(fleet.campaigns.counters().subscribers_overflowed.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn row_cap_and_active_campaign_cap_are_explicit() {
    let config = CampaignConfig {
        max_rows: 3,
        max_active: 1,
        ..CampaignConfig::default()
    };
    let fleet = fleet(3, 0, config).await;
    let started = fleet.campaigns.start(new_campaign(1..=3)).await.unwrap();
    assert!(matches!(
        fleet.campaigns.start(new_campaign(1..=3)).await,
        Err(CampaignError::TooMany { limit: 1 })
    ));
    assert!(matches!(
        fleet.campaigns.start(new_campaign([])).await,
        Err(CampaignError::NoTargets)
    ));
    let mut watcher = fleet.campaigns.subscribe(started.id).await.unwrap();
    settle().await;
    for i in 0..3 {
        assert!(fleet.check_in(i, started.id, 2).await);
    }
    let events = drain(&mut watcher).await;
    assert_eq!(
        result_hosts(&events).len(),
        1,
        "2 rows fit under the cap of 3, 4 would not"
    );
    let notices = events
        .iter()
        .filter(|e| matches!(e, CampaignEvent::Notice(_)))
        .count();
    assert_eq!(notices, 1);
    assert_eq!(
        statuses(&events).last().unwrap().actual_results,
        3,
        "capped answers still count"
    );
    // The slot is free again.
    fleet.campaigns.start(new_campaign(1..=3)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stop_all_ends_every_campaign_and_every_watch() {
    let fleet = fleet(2, 0, CampaignConfig::default()).await;
    let a = fleet.campaigns.start(new_campaign(1..=2)).await.unwrap();
    let b = fleet.campaigns.start(new_campaign(1..=1)).await.unwrap();
    let mut watcher = fleet.campaigns.subscribe(a.id).await.unwrap();
    assert_eq!(fleet.campaigns.stop_all(), 2);
    let events = drain(&mut watcher).await;
    assert!(statuses(&events).last().unwrap().finished);
    settle().await;
    assert_eq!(fleet.campaigns.active(), 0);
    for i in 0..2 {
        assert!(!fleet.check_in(i, a.id, 1).await && !fleet.check_in(i, b.id, 1).await);
    }
}
