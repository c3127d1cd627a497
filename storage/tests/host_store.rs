//! The storage suite: behaviour every `HostStore` and `CampaignStore` backend must have. Each
//! check runs once on a SQLite file and once on a scratch MySQL/MariaDB database (see
//! `backends/mod.rs`).

mod backends;

use backends::Backend;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{DeviceTokenWrite, Enrollment, HostUpdate, OrbitEnrollment};
use flotilla_engine::vitals::Vitals;

backend_tests!(
    reenrollment_keeps_the_host_and_retires_the_old_key,
    flushes_persist_seen_times_and_vitals,
    enroll_secrets_are_idempotent,
    enrolled_hosts_survive_reopen,
    campaigns_are_recorded_and_abandoned_ones_closed,
    large_flushes_and_long_details_are_written,
    hosts_are_found_by_id_and_current_node_key,
    orbit_and_osquery_enroll_one_machine_as_one_host,
    device_tokens_rotate_keep_the_previous_and_never_repeat_across_hosts,
    orbit_info_is_written_with_the_vitals,
);

fn orbit_enrollment(identifier: &str, uuid: &str, now: i64) -> OrbitEnrollment {
    OrbitEnrollment {
        identifier: identifier.into(),
        hardware_uuid: uuid.into(),
        hardware_serial: "SERIAL-1".into(),
        hostname: "from-orbit".into(),
        computer_name: "Orbit's Mac".into(),
        hardware_model: "MacBookPro18,3".into(),
        platform: "darwin".into(),
        platform_like: "darwin".into(),
        orbit_node_key: NodeKey::generate().digest(),
        team: None,
        now,
    }
}

fn enrollment(identifier: &str, uuid: &str, now: i64) -> Enrollment {
    Enrollment {
        identifier: identifier.into(),
        hardware_uuid: Some(uuid.into()),
        node_key: NodeKey::generate().digest(),
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

/// The engine stores digests of node keys; they come back as stored. A key an older version
/// stored in plain text comes back as its digest once the store is opened again.
async fn enrolled_hosts_survive_reopen(backend: &Backend) {
    let e = enrollment("host-r", "UUID-R", 100);
    backend.hosts().enroll_host(&e).await.unwrap();
    let plain = NodeKey::generate();
    let legacy = Enrollment {
        node_key: plain.clone(),
        ..enrollment("host-legacy", "UUID-L", 100)
    };
    backend.hosts().enroll_host(&legacy).await.unwrap();
    let reopened = backend.reopen().await;
    let mut hosts = reopened.load_hosts().await.unwrap();
    hosts.sort_by_key(|h| h.id);
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0].node_key.as_ref(), Some(&e.node_key));
    assert_eq!(hosts[1].node_key.as_ref(), Some(&plain.digest()));
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

async fn orbit_and_osquery_enroll_one_machine_as_one_host(backend: &Backend) {
    let store = backend.hosts();
    // orbit first: the host exists without an osquery node key.
    let orbit = orbit_enrollment("UUID-O", "UUID-O", 100);
    let first = store.enroll_orbit(&orbit).await.unwrap();
    assert!(first.created);
    assert_eq!(first.host.node_key, None);
    assert_eq!(
        first.host.orbit_node_key.as_ref(),
        Some(&orbit.orbit_node_key)
    );
    assert_eq!(first.host.platform, "darwin");
    assert!(first.host.refetch_requested);
    let found = store
        .host_by_orbit_node_key(orbit.orbit_node_key.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.host.id);

    // osqueryd, started by orbit with --host_identifier=uuid, enrolls into the same row; what
    // it reports replaces orbit's guesses.
    let osquery = store
        .enroll_host(&enrollment("UUID-O", "UUID-O", 110))
        .await
        .unwrap();
    assert!(!osquery.created);
    assert_eq!(osquery.host.id, first.host.id);
    assert_eq!(osquery.host.hostname, "UUID-O.local");
    assert_eq!(
        osquery.host.orbit_node_key.as_ref(),
        Some(&orbit.orbit_node_key),
        "osquery's enrollment keeps orbit's key"
    );

    // orbit re-enrolls (it lost its key): same host, new key, the old one retired; osquery's
    // columns are not overwritten by orbit's.
    let again = orbit_enrollment("UUID-O", "UUID-O", 120);
    let second = store.enroll_orbit(&again).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.host.id, first.host.id);
    assert_eq!(
        second.previous_node_key.as_ref(),
        Some(&orbit.orbit_node_key)
    );
    assert_eq!(second.host.hostname, "UUID-O.local");
    assert_eq!(second.host.node_key, osquery.host.node_key);
    assert!(
        store
            .host_by_orbit_node_key(orbit.orbit_node_key.as_str())
            .await
            .unwrap()
            .is_none()
    );

    // osquery first, under a hostname identifier; orbit (no identifier of its own) finds the
    // machine by its hardware UUID.
    let by_hostname = store
        .enroll_host(&enrollment("web-1", "UUID-W", 130))
        .await
        .unwrap();
    let orbit_later = store
        .enroll_orbit(&orbit_enrollment("UUID-W", "UUID-W", 140))
        .await
        .unwrap();
    assert_eq!(orbit_later.host.id, by_hostname.host.id);

    // Duplicated hardware UUIDs (VM clones) told apart by osquery_identifier: two hosts.
    let clone_a = store
        .enroll_orbit(&orbit_enrollment("clone-a", "UUID-DUP", 150))
        .await
        .unwrap();
    let clone_b = store
        .enroll_orbit(&orbit_enrollment("clone-b", "UUID-DUP", 150))
        .await
        .unwrap();
    assert_ne!(clone_a.host.id, clone_b.host.id);
    assert_eq!(store.load_hosts().await.unwrap().len(), 4);
}

async fn device_tokens_rotate_keep_the_previous_and_never_repeat_across_hosts(backend: &Backend) {
    let store = backend.hosts();
    let a = store
        .enroll_orbit(&orbit_enrollment("UUID-1", "UUID-1", 100))
        .await
        .unwrap()
        .host
        .id;
    let b = store
        .enroll_orbit(&orbit_enrollment("UUID-2", "UUID-2", 100))
        .await
        .unwrap()
        .host
        .id;
    let set = |write: DeviceTokenWrite| match write {
        DeviceTokenWrite::Set(auth) => auth,
        DeviceTokenWrite::Conflict => panic!("unexpected conflict"),
    };
    let first = set(store.set_device_token(a, "token-1", 200).await.unwrap());
    assert_eq!(
        (first.token.as_str(), first.previous, first.updated_at),
        ("token-1", None, 200)
    );
    // The same token again changes nothing, its time included.
    let same = set(store.set_device_token(a, "token-1", 500).await.unwrap());
    assert_eq!(same.updated_at, 200);
    // Rotation keeps the replaced token as the previous one.
    let rotated = set(store.set_device_token(a, "token-2", 900).await.unwrap());
    assert_eq!(rotated.previous.as_deref(), Some("token-1"));
    assert_eq!(rotated.updated_at, 900);
    // Another host may not take a token that is in use.
    assert_eq!(
        store.set_device_token(b, "token-2", 901).await.unwrap(),
        DeviceTokenWrite::Conflict
    );
    set(store.set_device_token(b, "token-b", 901).await.unwrap());

    for token in ["token-2", "token-1"] {
        let host = store.host_by_device_token(token).await.unwrap().unwrap();
        assert_eq!(host.id, a, "{token}");
        assert_eq!(host.device.as_ref().unwrap(), &rotated);
    }
    assert!(store.host_by_device_token("nope").await.unwrap().is_none());
    let loaded = store.load_hosts().await.unwrap();
    let b_loaded = loaded.iter().find(|h| h.id == b).unwrap();
    assert_eq!(b_loaded.device.as_ref().unwrap().token, "token-b");

    store
        .set_device_mapping(a, "user@example.com", 950)
        .await
        .unwrap();
    store
        .set_device_mapping(a, "other@example.com", 960)
        .await
        .unwrap();
    store.request_refetch(b).await.unwrap();
    assert!(store.load_host(b).await.unwrap().unwrap().refetch_requested);
}

async fn orbit_info_is_written_with_the_vitals(backend: &Backend) {
    let store = backend.hosts();
    let host = store
        .enroll_host(&enrollment("host-oi", "UUID-OI", 100))
        .await
        .unwrap()
        .host
        .id;
    let update = HostUpdate {
        vitals: Some(Vitals {
            orbit: Some(flotilla_engine::vitals::OrbitInfo {
                version: "1.38.0".into(),
                desktop_version: Some("1.38.0".into()),
                scripts_enabled: Some(true),
            }),
            ..Vitals::default()
        }),
        detail_updated_at: Some(200),
        ..HostUpdate::default()
    };
    store.flush_hosts(&[(host, update.clone())]).await.unwrap();
    // Written twice (the next hour's answer) it is replaced, not duplicated.
    let mut newer = update;
    newer
        .vitals
        .as_mut()
        .unwrap()
        .orbit
        .as_mut()
        .unwrap()
        .version = "1.39.0".into();
    store.flush_hosts(&[(host, newer)]).await.unwrap();
    let admin = backend.admin();
    let shown = admin.host(host).await.unwrap().unwrap();
    assert_eq!(shown.orbit_version.as_deref(), Some("1.39.0"));
    assert_eq!(shown.fleet_desktop_version.as_deref(), Some("1.38.0"));
    assert_eq!(shown.scripts_enabled, Some(true));
}
