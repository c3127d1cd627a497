//! Software inventory in the store: interning, a host's set replaced by its difference, the
//! counts, the vulnerability findings and the lists the API reads. Each check runs on SQLite
//! and on MySQL/MariaDB (see `backends/mod.rs`).

mod backends;

use std::sync::Arc;

use backends::Backend;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::software::Inventory;
use flotilla_engine::store::{Enrollment, HostUpdate};
use flotilla_engine::vitals::Vitals;
use flotilla_storage::admin::{
    CveMeta, HostFilter, HostScope, Order, Page, SoftwareCve, SoftwareFilter, SoftwareListFilter,
    VulnerabilityFilter,
};

backend_tests!(
    a_hosts_set_is_interned_replaced_and_counted,
    findings_give_vulnerabilities_with_exact_host_counts,
);

const ALL: Page = Page {
    limit: 1000,
    offset: 0,
};

fn order(key: &str) -> Order {
    Order {
        key: key.into(),
        descending: false,
    }
}

fn package(name: &str, version: &str) -> std::collections::HashMap<String, String> {
    [
        ("name", name),
        ("version", version),
        ("source", "deb_packages"),
        ("arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn enroll(backend: &Backend, name: &str, team: Option<TeamId>) -> HostId {
    backend
        .hosts()
        .enroll_host(&Enrollment {
            identifier: name.into(),
            hardware_uuid: Some(format!("UUID-{name}")),
            node_key: NodeKey::generate(),
            team,
            vitals: Vitals {
                hostname: Some(name.into()),
                platform: Some("ubuntu".into()),
                os_version: Some("Ubuntu 22.04.4 LTS".into()),
                ..Vitals::default()
            },
            now: 100,
        })
        .await
        .unwrap()
        .host
        .id
}

async fn report(backend: &Backend, host: HostId, packages: &[(&str, &str)], at: i64) {
    let rows: Vec<_> = packages.iter().map(|(n, v)| package(n, v)).collect();
    let inventory = Inventory::from_rows(&rows, "ubuntu", "Ubuntu 22.04.4 LTS");
    let update = HostUpdate {
        software: Some(Arc::new(inventory)),
        software_updated_at: Some(at),
        ..HostUpdate::default()
    };
    backend
        .hosts()
        .flush_hosts(&[(host, update)])
        .await
        .unwrap();
}

async fn a_hosts_set_is_interned_replaced_and_counted(backend: &Backend) {
    let a = enroll(backend, "a", None).await;
    let b = enroll(backend, "b", None).await;
    report(
        backend,
        a,
        &[("curl", "7.81.0-1ubuntu1.13"), ("bash", "5.1-6ubuntu1")],
        200,
    )
    .await;
    report(
        backend,
        b,
        &[
            ("curl", "7.81.0-1ubuntu1.13"),
            ("vim", "2:8.2.3995-1ubuntu2"),
        ],
        200,
    )
    .await;
    let store = backend.admin();
    store.refresh_software_counts(1, 300).await.unwrap();
    let (versions, count) = store
        .software_versions(&SoftwareListFilter::default(), &order("name"), ALL)
        .await
        .unwrap();
    assert_eq!(count, 3);
    let shown: Vec<(&str, u64)> = versions
        .iter()
        .map(|v| (v.name.as_str(), v.hosts_count))
        .collect();
    assert_eq!(shown, [("bash", 1), ("curl", 2), ("vim", 1)]);
    let curl = versions.iter().find(|v| v.name == "curl").unwrap().id;

    // a upgrades curl: the old version loses a host, the new one appears, bash stays.
    report(
        backend,
        a,
        &[("curl", "7.81.0-1ubuntu1.16"), ("bash", "5.1-6ubuntu1")],
        400,
    )
    .await;
    store.refresh_software_counts(2, 500).await.unwrap();
    let old = store.software_version(curl, None).await.unwrap().unwrap();
    assert_eq!(old.hosts_count, 1);
    let hosts = store
        .list_hosts(
            &HostFilter {
                software: Some(SoftwareFilter::Version(curl)),
                ..HostFilter::all()
            },
            &order("hostname"),
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(
        hosts
            .iter()
            .map(|h| h.hostname.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    // Both curl versions are one title, on both hosts.
    let (titles, _) = store
        .software_titles(
            &SoftwareListFilter {
                search: Some("curl".into()),
                ..SoftwareListFilter::default()
            },
            &order("name"),
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(titles.len(), 1);
    assert_eq!(titles[0].hosts_count, 2);
    assert_eq!(titles[0].versions.len(), 2);
    let on_a: Vec<String> = store
        .host_software(a)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {}", s.software.name, s.software.version))
        .collect();
    assert_eq!(on_a, ["bash 5.1-6ubuntu1", "curl 7.81.0-1ubuntu1.16"]);
    // The fingerprint survives a restart: the registry loads it with the host.
    let reopened = backend.reopen().await;
    let stored = reopened.load_host(a).await.unwrap().unwrap();
    assert_ne!(stored.software_fingerprint, 0);
    assert_eq!(stored.os_version, "Ubuntu 22.04.4 LTS");
    let state = store.software_state().await.unwrap();
    assert_eq!((state.changed_at, state.counts_updated_at), (400, 500));
    // Three writes of host software (a, b, a again); the counts saw the second generation.
    assert_eq!((state.generation, state.counted_generation), (3, 2));
    // The distribution packages are recorded as seen on Ubuntu 22.04.
    let matchable = store.matchable_software(&["deb_packages"]).await.unwrap();
    assert_eq!(matchable.len(), 4);
    assert!(
        matchable
            .iter()
            .all(|m| m.os == [("ubuntu".to_owned(), "Ubuntu 22.04.4 LTS".to_owned())])
    );
    let os = store.os_versions(None, &HostScope::All).await.unwrap();
    assert_eq!(os.len(), 1);
    assert_eq!(
        (os[0].name.as_str(), os[0].hosts_count),
        ("Ubuntu 22.04.4 LTS", 2)
    );
}

async fn findings_give_vulnerabilities_with_exact_host_counts(backend: &Backend) {
    let team = backend
        .admin()
        .create_team("eng", "", "eng-secret", 100)
        .await
        .unwrap()
        .id;
    let a = enroll(backend, "a", None).await;
    let b = enroll(backend, "b", Some(team)).await;
    let c = enroll(backend, "c", Some(team)).await;
    report(
        backend,
        a,
        &[
            ("openssl", "3.0.2-0ubuntu1.10"),
            ("curl", "7.81.0-1ubuntu1.13"),
        ],
        200,
    )
    .await;
    report(backend, b, &[("openssl", "3.0.2-0ubuntu1.10")], 200).await;
    report(
        backend,
        c,
        &[
            ("openssl", "3.0.2-0ubuntu1.15"),
            ("curl", "7.81.0-1ubuntu1.13"),
        ],
        200,
    )
    .await;
    let store = backend.admin();
    let software = store.matchable_software(&["deb_packages"]).await.unwrap();
    let id = |name: &str, version: &str| {
        software
            .iter()
            .find(|s| s.name == name && s.version == version)
            .unwrap()
            .id
    };
    let found = vec![
        SoftwareCve {
            software_id: id("openssl", "3.0.2-0ubuntu1.10"),
            cve: "CVE-2023-5678".into(),
            osv_id: "USN-6622-1".into(),
            resolved_in_version: Some("3.0.2-0ubuntu1.14".into()),
        },
        SoftwareCve {
            software_id: id("curl", "7.81.0-1ubuntu1.13"),
            cve: "CVE-2023-38545".into(),
            osv_id: "USN-6429-1".into(),
            resolved_in_version: Some("7.81.0-1ubuntu1.14".into()),
        },
    ];
    let meta = vec![
        (
            "CVE-2023-5678".to_owned(),
            CveMeta {
                cvss_score: Some(5.3),
                epss_probability: Some(0.00123),
                published: Some(1_699_000_000),
                description: Some("openssl: excessive time spent in DH checks".into()),
                ..CveMeta::default()
            },
        ),
        (
            "CVE-2023-38545".to_owned(),
            CveMeta {
                cvss_score: Some(9.8),
                cisa_known_exploit: true,
                ..CveMeta::default()
            },
        ),
    ];
    let written = store
        .replace_software_cves(&found, &meta, "feed-1", 3, 300)
        .await
        .unwrap();
    assert_eq!((written.added, written.removed), (2, 0));
    // The same match again writes nothing.
    let again = store
        .replace_software_cves(&found, &meta, "feed-1", 3, 301)
        .await
        .unwrap();
    assert_eq!((again.added, again.removed), (0, 0));
    store.refresh_software_counts(3, 310).await.unwrap();
    let by_cve = |list: &[flotilla_storage::admin::Vulnerability]| {
        list.iter()
            .map(|v| (v.cve.clone(), v.hosts_count))
            .collect::<Vec<_>>()
    };
    let (all, count) = store
        .vulnerabilities(&VulnerabilityFilter::default(), &order("cve"), ALL)
        .await
        .unwrap();
    assert_eq!(count, 2);
    assert_eq!(
        by_cve(&all),
        [("CVE-2023-38545".into(), 2), ("CVE-2023-5678".into(), 2)]
    );
    let (in_team, _) = store
        .vulnerabilities(
            &VulnerabilityFilter {
                team: Some(team),
                ..VulnerabilityFilter::default()
            },
            &order("cve"),
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(
        by_cve(&in_team),
        [("CVE-2023-38545".into(), 1), ("CVE-2023-5678".into(), 1)]
    );
    let (vulnerable, _) = store
        .software_versions(
            &SoftwareListFilter {
                vulnerable: true,
                ..SoftwareListFilter::default()
            },
            &Order {
                key: "cvss_score".into(),
                descending: true,
            },
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(vulnerable.len(), 2);
    assert_eq!(vulnerable[0].name, "curl");
    assert_eq!(vulnerable[0].vulnerabilities[0].meta.cvss_score, Some(9.8));
    assert_eq!(
        vulnerable[1].vulnerabilities[0]
            .resolved_in_version
            .as_deref(),
        Some("3.0.2-0ubuntu1.14")
    );
    let (exploited, _) = store
        .software_versions(
            &SoftwareListFilter {
                exploit: true,
                ..SoftwareListFilter::default()
            },
            &order("name"),
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(
        exploited
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["curl"]
    );
    let (detail, affected) = store
        .vulnerability("CVE-2023-5678", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.meta.epss_probability, Some(0.00123));
    assert_eq!(affected.len(), 1);
    assert_eq!(affected[0].hosts_count, 2);
    // A later feed withdraws the curl finding: it goes, with its CVE.
    let written = store
        .replace_software_cves(&found[..1], &meta, "feed-2", 3, 400)
        .await
        .unwrap();
    assert_eq!((written.added, written.removed), (0, 1));
    assert!(
        store
            .vulnerability("CVE-2023-38545", None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.software_state().await.unwrap().feed_fingerprint,
        "feed-2"
    );
}
