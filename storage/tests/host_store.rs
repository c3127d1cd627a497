//! The storage suite: behaviour every `HostStore` backend must have, run against a real SQLite
//! file. Each check is written against `&dyn HostStore` so other backends can run the same.

use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{Enrollment, HostStore, HostUpdate};
use flotilla_engine::vitals::Vitals;
use flotilla_storage::SqliteStore;

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

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flotilla.db"))
        .await
        .unwrap();
    (dir, store)
}

async fn reenrollment_keeps_the_host_and_retires_the_old_key(store: &dyn HostStore) {
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

async fn flushes_persist_seen_times_and_vitals(store: &dyn HostStore) {
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

async fn enroll_secrets_are_idempotent(store: &dyn HostStore) {
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

#[tokio::test]
async fn sqlite_reenrollment() {
    let (_dir, store) = sqlite().await;
    reenrollment_keeps_the_host_and_retires_the_old_key(&store).await;
}

#[tokio::test]
async fn sqlite_flushes() {
    let (_dir, store) = sqlite().await;
    flushes_persist_seen_times_and_vitals(&store).await;
}

#[tokio::test]
async fn sqlite_secrets() {
    let (_dir, store) = sqlite().await;
    enroll_secrets_are_idempotent(&store).await;
}

#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flotilla.db");
    let key = {
        let store = SqliteStore::open(&path).await.unwrap();
        let e = enrollment("host-r", "UUID-R", 100);
        store.enroll_host(&e).await.unwrap();
        e.node_key
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let hosts = store.load_hosts().await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].node_key.as_ref(), Some(&key));
}

#[tokio::test]
async fn sqlite_campaigns_are_recorded_and_abandoned_ones_closed() {
    use flotilla_engine::store::{CampaignOutcome, CampaignRecord, CampaignStore, TargetKind};
    let (_dir, store) = sqlite().await;
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
