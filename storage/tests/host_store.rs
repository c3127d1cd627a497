//! The storage suite: behaviour every `HostStore` and `CampaignStore` backend must have. Each
//! check runs once on a SQLite file and once on a scratch MySQL/MariaDB database (see
//! `backends/mod.rs`).

mod backends;

use backends::Backend;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{Enrollment, HostUpdate};
use flotilla_engine::vitals::Vitals;

backend_tests!(
    reenrollment_keeps_the_host_and_retires_the_old_key,
    flushes_persist_seen_times_and_vitals,
    enroll_secrets_are_idempotent,
    enrolled_hosts_survive_reopen,
    campaigns_are_recorded_and_abandoned_ones_closed,
    large_flushes_and_long_details_are_written,
    hosts_are_found_by_id_and_current_node_key,
);

fn enrollment(identifier: &str, uuid: &str, now: i64) -> Enrollment {
    Enrollment {
        identifier: identifier.into(),
        hardware_uuid: Some(uuid.into()),
        node_key: NodeKey::generate(),
        team: None,
        vitals: Vitals {
            hostname: Some(format!("{identifier}.local")),
            platform: Some("ubuntu".into()),
            uuid: Some(uuid.into()),
            ..Vitals::default()
        },
        now,
    }
}

async fn reenrollment_keeps_the_host_and_retires_the_old_key(backend: &Backend) {
    let store = backend.hosts();
    let first = enrollment("host-a", "UUID-A", 100);
    let a = store.enroll_host(&first).await.unwrap();
    assert!(a.created);
    assert_eq!(a.host.hostname, "host-a.local");

    let again = enrollment("host-a", "UUID-A", 200);
    let b = store.enroll_host(&again).await.unwrap();
    assert!(!b.created);
    assert_eq!(b.host.id, a.host.id);
    assert_eq!(b.previous_node_key.as_ref(), Some(&first.node_key));
    assert_eq!(b.host.node_key.as_ref(), Some(&again.node_key));

    // Same hardware, new identifier (e.g. renamed with host_identifier=hostname): same host.
    let renamed = enrollment("host-a-renamed", "UUID-A", 300);
    let c = store.enroll_host(&renamed).await.unwrap();
    assert_eq!(c.host.id, a.host.id);
    assert_eq!(c.host.identifier, "host-a-renamed");

    let other = store
        .enroll_host(&enrollment("host-b", "UUID-B", 300))
        .await
        .unwrap();
    assert_ne!(other.host.id, a.host.id);
    assert_eq!(store.load_hosts().await.unwrap().len(), 2);
}

async fn flushes_persist_seen_times_and_vitals(backend: &Backend) {
    let store = backend.hosts();
    let host = store
        .enroll_host(&enrollment("host-f", "UUID-F", 100))
        .await
        .unwrap()
        .host
        .id;
    let update = HostUpdate {
        seen_time: Some(500),
        vitals: Some(Vitals {
            hostname: Some("renamed".into()),
            distributed_interval: Some(10),
            config_tls_refresh: Some(60),
            ..Vitals::default()
        }),
        detail_updated_at: Some(450),
        ..HostUpdate::default()
    };
    store.flush_hosts(&[(host, update)]).await.unwrap();
    // An older seen time never moves the stored one back.
    store
        .flush_hosts(&[(
            host,
            HostUpdate {
                seen_time: Some(400),
                ..HostUpdate::default()
            },
        )])
        .await
        .unwrap();
    let loaded = store.load_hosts().await.unwrap();
    let h = loaded.iter().find(|h| h.id == host).unwrap();
    assert_eq!(h.seen_time, 500);
    assert_eq!(h.detail_updated_at, 450);
    assert_eq!(h.hostname, "renamed");
    assert_eq!(h.platform, "ubuntu", "unsaid vitals are kept");
    assert_eq!(h.intervals.distributed, 10);
    assert_eq!(h.intervals.config_refresh, 60);
    assert!(!h.refetch_requested);
    let missing = store
        .flush_hosts(&[(HostId(999_999), HostUpdate::default())])
        .await;
    assert!(missing.is_ok(), "a deleted host's update is harmless");
}

async fn enroll_secrets_are_idempotent(backend: &Backend) {
    let store = backend.hosts();
    assert!(store.ensure_enroll_secret("s1", None).await.unwrap());
    assert!(!store.ensure_enroll_secret("s1", None).await.unwrap());
    assert!(
        store
            .ensure_enroll_secret("t1", Some(TeamId(4)))
            .await
            .unwrap()
    );
    let secrets = store.enroll_secrets().await.unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(
        secrets
            .iter()
            .any(|s| s.secret == "t1" && s.team == Some(TeamId(4)))
    );
}

async fn enrolled_hosts_survive_reopen(backend: &Backend) {
    let e = enrollment("host-r", "UUID-R", 100);
    backend.hosts().enroll_host(&e).await.unwrap();
    let reopened = backend.reopen().await;
    let hosts = reopened.load_hosts().await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].node_key.as_ref(), Some(&e.node_key));
}

async fn campaigns_are_recorded_and_abandoned_ones_closed(backend: &Backend) {
    use flotilla_engine::store::{CampaignOutcome, CampaignRecord, TargetKind};
    let store = backend.campaigns();
    let record = |sql: &str| CampaignRecord {
        sql: sql.into(),
        query_id: None,
        user_id: Some(1),
        selected: vec![(TargetKind::Host, 5), (TargetKind::Label, 6)],
        created_at: 100,
    };
    let a = store.create_campaign(&record("SELECT 1")).await.unwrap();
    let b = store.create_campaign(&record("SELECT 2")).await.unwrap();
    let c = store.create_campaign(&record("SELECT 3")).await.unwrap();
    assert_ne!(a, b, "ids are never reused");
    let outcome = CampaignOutcome {
        reason: "all_answered",
        targets: 2,
        online: 1,
        responded: 1,
        finished_at: 200,
    };
    store.finish_campaign(a, &outcome).await.unwrap();
    // c still runs on another node sharing the relay: it is kept.
    assert_eq!(
        store.finish_abandoned_campaigns(300, &[c]).await.unwrap(),
        1,
        "only b was still running and not kept"
    );
    assert_eq!(
        store.finish_abandoned_campaigns(300, &[c]).await.unwrap(),
        0
    );
    assert_eq!(store.finish_abandoned_campaigns(300, &[]).await.unwrap(), 1);
}

/// A flush of many hosts at once (more than one statement's chunk on MySQL) moves every
/// host's time forward and none back, and host details longer than MySQL's columns do not
/// make the batch fail.
async fn large_flushes_and_long_details_are_written(backend: &Backend) {
    let store = backend.hosts();
    let mut ids = Vec::new();
    for i in 0..30 {
        let e = enrollment(&format!("bulk-{i}"), &format!("UUID-BULK-{i}"), 100);
        ids.push(store.enroll_host(&e).await.unwrap().host.id);
    }
    // 12,000 updates: the 30 real hosts (twice, the second older) and hosts that are gone.
    let mut updates: Vec<(HostId, HostUpdate)> = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        updates.push((
            *id,
            HostUpdate {
                seen_time: Some(1_000 + n as i64),
                ..HostUpdate::default()
            },
        ));
    }
    for gone in 0..11_940u64 {
        updates.push((
            HostId(1_000_000 + gone),
            HostUpdate {
                seen_time: Some(5),
                ..HostUpdate::default()
            },
        ));
    }
    for id in &ids {
        updates.push((
            *id,
            HostUpdate {
                seen_time: Some(500),
                ..HostUpdate::default()
            },
        ));
    }
    let long = "x".repeat(1_000);
    updates.push((
        ids[0],
        HostUpdate {
            vitals: Some(Vitals {
                cpu_brand: Some(long.clone()),
                hostname: Some("ünïcode-host".into()),
                ..Vitals::default()
            }),
            detail_updated_at: Some(900),
            ..HostUpdate::default()
        },
    ));
    store.flush_hosts(&updates).await.unwrap();
    let loaded = backend.reopen().await.load_hosts().await.unwrap();
    for (n, id) in ids.iter().enumerate() {
        let host = loaded.iter().find(|h| h.id == *id).unwrap();
        assert_eq!(host.seen_time, 1_000 + n as i64, "never moved back");
    }
    let first = loaded.iter().find(|h| h.id == ids[0]).unwrap();
    assert_eq!(first.hostname, "ünïcode-host");
    assert_eq!(first.detail_updated_at, 900);
}

/// What a node sharing the store looks up when another node enrolled or changed a host.
async fn hosts_are_found_by_id_and_current_node_key(backend: &Backend) {
    let store = backend.hosts();
    let first = enrollment("host-k", "UUID-K", 100);
    let a = store.enroll_host(&first).await.unwrap();
    let found = store
        .host_by_node_key(first.node_key.as_str())
        .await
        .unwrap()
        .expect("found by its key");
    assert_eq!(found.id, a.host.id);
    assert_eq!(found.hostname, "host-k.local");

    let again = enrollment("host-k", "UUID-K", 200);
    store.enroll_host(&again).await.unwrap();
    assert!(
        store
            .host_by_node_key(first.node_key.as_str())
            .await
            .unwrap()
            .is_none(),
        "the retired key finds nothing"
    );
    let by_id = store.load_host(a.host.id).await.unwrap().expect("by id");
    assert_eq!(by_id.node_key.as_ref(), Some(&again.node_key));
    assert!(store.load_host(HostId(999_999)).await.unwrap().is_none());
    assert!(
        store
            .host_by_node_key("no-such-key")
            .await
            .unwrap()
            .is_none()
    );
}
